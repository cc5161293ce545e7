//! Compliance frameworks whose requirement ids policies map to. Palisade ships the
//! PCI DSS v4.0.1 requirement list (ids with titles paraphrased by the project) to
//! validate bundles' ids and to title evidence reports.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// One requirement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    /// Number, e.g. `2.2.5`.
    pub id: String,
    /// Title.
    pub title: String,
    /// The enclosing requirement (`2.2` for `2.2.5`).
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    requirements: Vec<Requirement>,
}

/// The framework id bundles declare for PCI DSS v4.0.1.
pub const PCI_DSS_4_0_1: &str = "pci-dss-4.0.1";

/// The requirements of a framework by id (`pci-dss-4.0.1`, also accepted as
/// `pci-dss`); `None` for a framework Palisade does not ship.
pub fn requirements(framework: &str) -> Option<&'static BTreeMap<String, Requirement>> {
    static PCI: OnceLock<BTreeMap<String, Requirement>> = OnceLock::new();
    match framework {
        PCI_DSS_4_0_1 | "pci-dss" | "pci-dss-v4.0.1" => Some(PCI.get_or_init(|| {
            let data: Data = serde_json::from_str(include_str!("../data/pci-dss-4.0.1.json"))
                .unwrap_or(Data { requirements: vec![] });
            data.requirements.into_iter().map(|r| (r.id.clone(), r)).collect()
        })),
        _ => None,
    }
}

/// How a framework id is named in messages: `PCI DSS` for the PCI DSS ids, else
/// the id as the bundle wrote it.
pub fn display_name(framework: &str) -> String {
    match framework {
        PCI_DSS_4_0_1 | "pci-dss" | "pci-dss-v4.0.1" => "PCI DSS".to_string(),
        other => other.to_string(),
    }
}

/// Orders requirement ids numerically (`2.2.10` after `2.2.9`; appendix ids last).
pub fn sort_key(id: &str) -> Vec<(u32, String)> {
    id.split('.')
        .map(|part| match part.parse::<u32>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u32::MAX, part.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_dss_is_shipped() {
        let r = requirements("pci-dss-4.0.1").unwrap();
        assert_eq!(r.len(), 363);
        assert_eq!(r["2.2.5"].parent.as_deref(), Some("2.2"));
        assert!(requirements("iso-27001").is_none());
        let mut ids = vec!["2.2.10", "10.1", "2.2.9", "A1.1", "2"];
        ids.sort_by_key(|i| sort_key(i));
        assert_eq!(ids, ["2", "2.2.9", "2.2.10", "10.1", "A1.1"]);
    }
}
