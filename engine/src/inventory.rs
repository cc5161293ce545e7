//! Referential data for rules that look at other objects, laid out as Gatekeeper
//! lays out `data.inventory`, so existing Gatekeeper Rego works unchanged:
//!
//! ```text
//! data.inventory.cluster[groupVersion][kind][name]
//! data.inventory.namespace[namespace][groupVersion][kind][name]
//! ```
//!
//! In `scan` mode the inventory is every object scanned (plus `--inventory` files);
//! the server keeps its own.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::object::{self, Gvk};

type ByKind = BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>;

/// A set of objects, indexed for `data.inventory` and for Namespace lookups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    cluster: ByKind,
    namespaced: BTreeMap<String, ByKind>,
    len: usize,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// Adds (or replaces) an object. Returns false, adding nothing, when the value has
    /// no `apiVersion`/`kind` or no name.
    pub fn add(&mut self, obj: &Value) -> bool {
        self.insert(obj.clone())
    }

    /// [`Inventory::add`] of an object the caller no longer needs (no copy).
    pub fn insert(&mut self, obj: Value) -> bool {
        let (Some(gvk), Some(name)) = (Gvk::of(&obj), object::name(&obj).map(str::to_string)) else {
            return false;
        };
        let slot = if gvk.is_namespaced() {
            let ns = object::namespace(&obj).unwrap_or_default().to_string();
            self.namespaced.entry(ns).or_default()
        } else {
            &mut self.cluster
        };
        let previous = slot.entry(gvk.api_version()).or_default().entry(gvk.kind).or_default().insert(name, obj);
        if previous.is_none() {
            self.len += 1;
        }
        true
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the inventory holds no object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The Namespace object with this name, if present.
    pub fn namespace(&self, name: &str) -> Option<&Value> {
        self.cluster.get("v1")?.get("Namespace")?.get(name)
    }

    /// Only the Namespace objects (what namespace selectors need once the policies
    /// have their own copy of the rest as `data.inventory`).
    pub fn namespaces_only(&self) -> Inventory {
        let mut out = Inventory::new();
        for ns in self.cluster.get("v1").and_then(|v| v.get("Namespace")).into_iter().flat_map(|m| m.values()) {
            out.add(ns);
        }
        out
    }

    /// The `data` document `{"inventory": …}` as JSON text, written straight from the
    /// stored objects: no second tree of JSON values next to them (regorus parses the
    /// text into its own values).
    pub fn data_json_text(&self) -> String {
        #[derive(serde::Serialize)]
        struct Layout<'a> {
            cluster: &'a ByKind,
            namespace: &'a BTreeMap<String, ByKind>,
        }
        #[derive(serde::Serialize)]
        struct Data<'a> {
            inventory: Layout<'a>,
        }
        serde_json::to_string(&Data { inventory: Layout { cluster: &self.cluster, namespace: &self.namespaced } })
            .unwrap_or_else(|_| "{}".into())
    }

    /// The `data.inventory` document.
    pub fn to_json(&self) -> Value {
        let mut namespace = Map::new();
        for (ns, by_kind) in &self.namespaced {
            namespace.insert(ns.clone(), by_kind_json(by_kind));
        }
        let mut out = Map::new();
        out.insert("cluster".into(), by_kind_json(&self.cluster));
        out.insert("namespace".into(), Value::Object(namespace));
        Value::Object(out)
    }
}

fn by_kind_json(m: &ByKind) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gatekeeper_layout() {
        let mut inv = Inventory::new();
        assert!(inv.add(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pay"}})));
        assert!(inv.add(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "pay"}})));
        assert!(!inv.add(&json!({"kind": "x"})));
        assert_eq!(inv.len(), 2);
        let j = inv.to_json();
        let text: Value = serde_json::from_str(&inv.data_json_text()).unwrap();
        assert_eq!(text["inventory"], j, "the text form is the same document");
        assert_eq!(j["cluster"]["v1"]["Namespace"]["pay"]["metadata"]["name"], "pay");
        assert_eq!(j["namespace"]["pay"]["networking.k8s.io/v1"]["NetworkPolicy"]["deny"]["kind"], "NetworkPolicy");
        assert!(inv.namespace("pay").is_some());
        let only = inv.namespaces_only();
        assert_eq!((only.len(), only.namespace("pay")), (1, inv.namespace("pay")));
    }
}
