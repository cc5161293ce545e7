# pss-allow-privilege-escalation: Pod Security Standards restricted check
# `allowPrivilegeEscalation` (Kubernetes v1.25+). PCI DSS 2.2.1, 2.2.6: every container sets
# securityContext.allowPrivilegeEscalation: false explicitly. Windows pods are exempt.
#
# Message: allowPrivilegeEscalation != false (<container|containers> "<names>" must set
#          securityContext.allowPrivilegeEscalation=false)
#   names: containers where the field is not false (unset included), in visit order.
package pci.pss.allow_privilege_escalation

import data.lib.pss

bad := [pss.name(c) | some c in data.lib.pss.containers; not pss.sc(c).allowPrivilegeEscalation == false]

violation contains {"msg": msg, "details": {"check": "allowPrivilegeEscalation"}} if {
	not data.lib.pss.skip
	not data.lib.pss.windows
	count(bad) > 0
	msg := pss.message("allowPrivilegeEscalation != false", sprintf("%s must set securityContext.allowPrivilegeEscalation=false", [pss.containers_phrase(bad)]))
}
