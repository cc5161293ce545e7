//! `pod-security`: the Pod Security Standards checks of the pci-dss bundle, a second
//! implementation of its 19 `pss-*` Rego policies (Kubernetes v1.37 pod-security
//! admission, policy "latest") with the same findings: same messages, same count,
//! same allow/deny.
//!
//! One plugin serves every check; each `pss-*` policy selects its own with the
//! `check` setting (`privileged`, `host-ports`, ... : the policy id without `pss-`)
//! and passes the parameters the Rego policy gets (`exempt_namespaces`, allowed
//! lists). The skip rules are those of lib/pss.rego: exempt namespaces, UPDATEs that
//! change neither the pod spec nor the AppArmor annotations, and, for the four
//! baseline checks that upstream's restricted profile overrides (hostPathVolumes,
//! capabilities_baseline, seccompProfile_baseline, procMount), pods of restricted
//! (`cde`, `connected`) namespaces.

mod baseline;
mod common;
mod policy;
mod restricted;
mod settings;

#[cfg(test)]
mod tests;

pub use crate::policy::PodSecurity;
pub use crate::settings::{Check, Settings};

palisade_sdk::export_policy!(PodSecurity);
