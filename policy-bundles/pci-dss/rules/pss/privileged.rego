# pss-privileged: Pod Security Standards baseline check `privileged` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.6, 5.3.5: privileged containers disable every isolation mechanism.
#
# Message: privileged (<container|containers> "<names>" must not set securityContext.privileged=true)
#   names: containers with securityContext.privileged == true, in visit order.
package pci.pss.privileged

import data.lib.pss

bad := [pss.name(c) | some c in data.lib.pss.containers; pss.sc(c).privileged == true]

violation contains {"msg": msg, "details": {"check": "privileged"}} if {
	not data.lib.pss.skip
	count(bad) > 0
	msg := pss.message("privileged", sprintf("%s must not set securityContext.privileged=true", [pss.containers_phrase(bad)]))
}
