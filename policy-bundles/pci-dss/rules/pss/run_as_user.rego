# pss-run-as-user: Pod Security Standards restricted check `runAsUser` (Kubernetes v1.35+).
# PCI DSS 2.2.1, 2.2.6: no explicit runAsUser: 0 on the pod or any container (unset is fine);
# a user-namespaced pod (spec.hostUsers: false) is exempt. No Windows exemption.
#
# Message: runAsUser=0 (<setters> must not set runAsUser=0)
#   setters: "pod" and/or `container(s) "<names>"` (visit order), joined by " and ".
package pci.pss.run_as_user

import data.lib.pss

pod_bad := true if data.lib.pss.pod_sc.runAsUser == 0

else := false

bad := [pss.name(c) | some c in data.lib.pss.containers; pss.sc(c).runAsUser == 0]

violation contains {"msg": msg, "details": {"check": "runAsUser"}} if {
	not data.lib.pss.skip
	not data.lib.pss.host_users_false
	detail_setters := pss.setters(pod_bad, bad)
	detail_setters != ""
	msg := pss.message("runAsUser=0", sprintf("%s must not set runAsUser=0", [detail_setters]))
}
