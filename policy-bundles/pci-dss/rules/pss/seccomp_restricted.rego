# pss-seccomp-restricted: Pod Security Standards restricted check `seccompProfile_restricted`
# (Kubernetes v1.25+). PCI DSS 2.2.1, 2.2.6, 5.3.5: every container runs with a seccomp profile
# of `allowed_types` (RuntimeDefault, Localhost), set on the pod or on the container.
# Windows pods (spec.os.name: windows) are exempt.
#
# Messages (explicit problems win over implicit ones):
#   seccompProfile (<setters> must not set securityContext.seccompProfile.type to "<types>")
#     setters: "pod" and/or `container(s) "<names>"` (visit order) joined by " and ";
#     types: de-duplicated and sorted.
#   seccompProfile (pod or <container|containers> "<names>" must set
#     securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")
#     names: containers without a profile when the pod sets no valid one (visit order).
package pci.pss.seccomp_restricted

import data.lib.pss

pod_valid if {
	pss.has(data.lib.pss.pod_sc, "seccompProfile")
	pss.seccomp_valid(data.lib.pss.pod_sc)
}

implicit := [pss.name(c) |
	not pod_valid
	some c in data.lib.pss.containers
	not pss.has(pss.sc(c), "seccompProfile")
]

violation contains {"msg": msg, "details": {"check": "seccompProfile_restricted"}} if {
	not data.lib.pss.skip
	not data.lib.pss.windows
	msg := data.lib.pss.seccomp_explicit_message
}

violation contains {"msg": msg, "details": {"check": "seccompProfile_restricted"}} if {
	not data.lib.pss.skip
	not data.lib.pss.windows
	not data.lib.pss.seccomp_explicit_message
	count(implicit) > 0
	msg := pss.message("seccompProfile", sprintf(`pod or %s must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`, [pss.containers_phrase(implicit)]))
}
