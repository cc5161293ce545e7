# pss-sysctls: Pod Security Standards baseline check `sysctls` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.6: only namespaced, safe sysctls (parameter `allowed_sysctls`, upstream's
# 14 names at policy version 1.37; exact match, the slash form is not accepted).
#
# Message: forbidden sysctls (<names>)
#   names: spec.securityContext.sysctls[*].name not allowed, in spec order, not
#   de-duplicated, not quoted, joined by ", ".
package pci.pss.sysctls

import data.lib.pci
import data.lib.pss

forbidden := [sprintf("%v", [n]) |
	some s in pci.field_array(data.lib.pss.pod_sc, "sysctls")
	n := object.get(pci.as_object(s), "name", "")
	not n in input.parameters.allowed_sysctls
]

violation contains {"msg": msg, "details": {"check": "sysctls"}} if {
	not data.lib.pss.skip
	count(forbidden) > 0
	msg := pss.message("forbidden sysctls", concat(", ", forbidden))
}
