//! Referential data for rules that look at other objects, laid out as Gatekeeper
//! lays out `data.inventory`, so existing Gatekeeper Rego works unchanged:
//!
//! ```text
//! data.inventory.cluster[groupVersion][kind][name]
//! data.inventory.namespace[namespace][groupVersion][kind][name]
//! ```
//!
//! Objects are held once, in the form the Rego engine reads (regorus's reference-counted
//! values): building `data.inventory` shares them instead of copying, and a live inventory
//! that changes one object rebuilds only the index around the others. Namespaces are also
//! kept as JSON, for namespace selectors.
//!
//! In `scan` mode the inventory is every object scanned (plus `--inventory` files);
//! the server keeps its own.

use std::collections::BTreeMap;

use regorus::Value as RValue;
use serde_json::Value;

use crate::object::{self, Gvk};

type ByKind = BTreeMap<String, BTreeMap<String, BTreeMap<String, RValue>>>;

/// A set of objects, indexed for `data.inventory` and for Namespace lookups.
///
/// ```
/// let mut inv = palisade::Inventory::new();
/// inv.add(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pay"}}));
/// assert_eq!(inv.len(), 1);
/// assert_eq!(inv.to_json()["cluster"]["v1"]["Namespace"]["pay"]["metadata"]["name"], "pay");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    cluster: ByKind,
    namespaced: BTreeMap<String, ByKind>,
    namespaces: BTreeMap<String, Value>,
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

    /// [`Inventory::add`] of an object the caller no longer needs.
    pub fn insert(&mut self, obj: Value) -> bool {
        let (Some(gvk), Some(name)) = (Gvk::of(&obj), object::name(&obj).map(str::to_string)) else {
            return false;
        };
        let namespace = object::namespace(&obj).unwrap_or_default().to_string();
        if gvk.group.is_empty() && gvk.kind == "Namespace" {
            self.namespaces.insert(name.clone(), obj.clone());
        }
        let Some(value) = to_rego(obj) else { return false };
        self.place(&gvk, &namespace, name, value);
        true
    }

    /// Adds an object already converted (see [`to_rego`]); `namespace` is ignored for
    /// cluster-scoped kinds.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn insert_rego(&mut self, gvk: &Gvk, namespace: &str, name: &str, value: RValue) {
        if gvk.group.is_empty()
            && gvk.kind == "Namespace"
            && let Ok(json) = serde_json::to_value(&value)
        {
            self.namespaces.insert(name.to_string(), json);
        }
        self.place(gvk, namespace, name.to_string(), value);
    }

    fn place(&mut self, gvk: &Gvk, namespace: &str, name: String, value: RValue) {
        let slot = if gvk.is_namespaced() {
            self.namespaced.entry(namespace.to_string()).or_default()
        } else {
            &mut self.cluster
        };
        let by_name = slot.entry(gvk.api_version()).or_default().entry(gvk.kind.clone()).or_default();
        if by_name.insert(name, value).is_none() {
            self.len += 1;
        }
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
        self.namespaces.get(name)
    }

    /// Only the Namespace objects (what namespace selectors need once the policies
    /// have their own copy of the rest as `data.inventory`).
    pub fn namespaces_only(&self) -> Inventory {
        let mut out = Inventory::new();
        for ns in self.namespaces.values() {
            out.add(ns);
        }
        out
    }

    /// The `data` document `{"inventory": …}` for the Rego engine. The objects are
    /// shared with this inventory, not copied.
    pub(crate) fn rego_data(&self) -> RValue {
        let namespace = self
            .namespaced
            .iter()
            .map(|(ns, k)| (RValue::from(ns.as_str()), by_kind_rego(k)))
            .collect::<BTreeMap<_, _>>();
        let layout = BTreeMap::from([
            (RValue::from("cluster"), by_kind_rego(&self.cluster)),
            (RValue::from("namespace"), RValue::from(namespace)),
        ]);
        RValue::from(BTreeMap::from([(RValue::from("inventory"), RValue::from(layout))]))
    }

    /// The `data.inventory` document as JSON.
    pub fn to_json(&self) -> Value {
        let data = self.rego_data();
        serde_json::to_value(&data["inventory"]).unwrap_or(Value::Null)
    }

    /// The part of `data.inventory` in one group version, as JSON, laid out the same way
    /// (`{"cluster": {kind: {name: obj}}, "namespace": {ns: {kind: {name: obj}}}}`).
    pub(crate) fn group_json(&self, api_version: &str) -> Value {
        let kinds = |k: &ByKind| k.get(api_version).and_then(|k| serde_json::to_value(k).ok());
        let namespace: serde_json::Map<String, Value> =
            self.namespaced.iter().filter_map(|(ns, k)| Some((ns.clone(), kinds(k)?))).collect();
        serde_json::json!({"cluster": kinds(&self.cluster).unwrap_or_default(), "namespace": namespace})
    }
}

/// An object in the Rego engine's form (None only if it cannot be represented, such as
/// a number beyond regorus's range).
pub(crate) fn to_rego(obj: Value) -> Option<RValue> {
    serde_json::from_value(obj).ok()
}

fn by_kind_rego(m: &ByKind) -> RValue {
    let group = |kinds: &BTreeMap<String, BTreeMap<String, RValue>>| {
        let kinds = kinds.iter().map(|(kind, by_name)| {
            let names = by_name.iter().map(|(n, v)| (RValue::from(n.as_str()), v.clone())).collect::<BTreeMap<_, _>>();
            (RValue::from(kind.as_str()), RValue::from(names))
        });
        RValue::from(kinds.collect::<BTreeMap<_, _>>())
    };
    RValue::from(m.iter().map(|(gv, kinds)| (RValue::from(gv.as_str()), group(kinds))).collect::<BTreeMap<_, _>>())
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
        let rego: Value = serde_json::to_value(inv.rego_data()).unwrap();
        assert_eq!(rego["inventory"], j, "the Rego form is the same document");
        assert_eq!(j["cluster"]["v1"]["Namespace"]["pay"]["metadata"]["name"], "pay");
        assert_eq!(j["namespace"]["pay"]["networking.k8s.io/v1"]["NetworkPolicy"]["deny"]["kind"], "NetworkPolicy");
        assert_eq!(
            inv.group_json("networking.k8s.io/v1")["namespace"]["pay"]["NetworkPolicy"]["deny"]["kind"],
            "NetworkPolicy"
        );
        assert!(inv.namespace("pay").is_some());
        let only = inv.namespaces_only();
        assert_eq!((only.len(), only.namespace("pay")), (1, inv.namespace("pay")));
    }

    #[test]
    fn data_shares_the_objects_instead_of_copying_them() {
        let mut inv = Inventory::new();
        inv.add(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}));
        let stored = &inv.namespaced["n"]["v1"]["ConfigMap"]["c"];
        let data = inv.rego_data();
        let (RValue::Object(a), RValue::Object(b)) =
            (stored, &data["inventory"]["namespace"]["n"]["v1"]["ConfigMap"]["c"])
        else {
            panic!("objects expected")
        };
        assert!(std::sync::Arc::ptr_eq(a, b), "data.inventory holds the stored object itself");
    }

    #[test]
    fn replacing_an_object_keeps_the_count() {
        let mut inv = Inventory::new();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}});
        inv.add(&cm);
        inv.add(&cm);
        assert_eq!(inv.len(), 1);
    }
}
