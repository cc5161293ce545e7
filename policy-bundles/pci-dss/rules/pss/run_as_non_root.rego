# pss-run-as-non-root: Pod Security Standards restricted check `runAsNonRoot` (Kubernetes v1.35+).
# PCI DSS 2.2.1, 2.2.6: every container must run with runAsNonRoot: true, set on the pod or the
# container; a user-namespaced pod (spec.hostUsers: false) is exempt. No Windows exemption.
#
# Messages (explicit problems win over implicit ones):
#   runAsNonRoot != true (<setters> must not set securityContext.runAsNonRoot=false)
#     setters: "pod" and/or `container(s) "<names>"` (visit order) joined by " and ".
#   runAsNonRoot != true (pod or <container|containers> "<names>" must set securityContext.runAsNonRoot=true)
#     names: containers that leave it unset while the pod does not set true (visit order).
package pci.pss.run_as_non_root

import data.lib.pss

pod_false := true if data.lib.pss.pod_sc.runAsNonRoot == false

else := false

pod_true if data.lib.pss.pod_sc.runAsNonRoot == true

explicit := [pss.name(c) | some c in data.lib.pss.containers; pss.sc(c).runAsNonRoot == false]

implicit := [pss.name(c) |
	not pod_true
	some c in data.lib.pss.containers
	not pss.has(pss.sc(c), "runAsNonRoot")
]

explicit_setters := pss.setters(pod_false, explicit)

violation contains {"msg": msg, "details": {"check": "runAsNonRoot"}} if {
	not data.lib.pss.skip
	not data.lib.pss.host_users_false
	explicit_setters != ""
	msg := pss.message("runAsNonRoot != true", sprintf("%s must not set securityContext.runAsNonRoot=false", [explicit_setters]))
}

violation contains {"msg": msg, "details": {"check": "runAsNonRoot"}} if {
	not data.lib.pss.skip
	not data.lib.pss.host_users_false
	explicit_setters == ""
	count(implicit) > 0
	msg := pss.message("runAsNonRoot != true", sprintf("pod or %s must set securityContext.runAsNonRoot=true", [pss.containers_phrase(implicit)]))
}
