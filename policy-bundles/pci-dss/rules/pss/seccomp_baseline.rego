# pss-seccomp-baseline: Pod Security Standards baseline check `seccompProfile_baseline`
# (Kubernetes v1.19+ fields; the alpha annotations are ignored). PCI DSS 2.2.1, 2.2.6, 5.3.5:
# a seccomp profile, when set, must be one of `allowed_types` (RuntimeDefault, Localhost);
# Unconfined is forbidden. In restricted namespaces (cde, connected)
# pss-seccomp-restricted takes over.
#
# Message: seccompProfile (<setters> must not set securityContext.seccompProfile.type to "<types>")
#   setters: "pod" and/or `container(s) "<names>"` (visit order), joined by " and ";
#   types: the bad types, de-duplicated and sorted.
package pci.pss.seccomp_baseline

violation contains {"msg": msg, "details": {"check": "seccompProfile_baseline"}} if {
	not data.lib.pss.skip
	not data.lib.pss.restricted_namespace
	msg := data.lib.pss.seccomp_explicit_message
}
