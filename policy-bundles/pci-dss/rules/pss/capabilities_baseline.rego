# pss-capabilities-baseline: Pod Security Standards baseline check `capabilities_baseline`
# (Kubernetes v1.37). PCI DSS 2.2.1, 2.2.6: only the container runtime's default capabilities
# may be added (parameter `allowed_capabilities`, upstream's 13 by default).
# In restricted namespaces (cde, connected) pss-capabilities-restricted takes over.
#
# Message: non-default capabilities (<container|containers> "<names>" must not include
#          "<capabilities>" in securityContext.capabilities.add)
#   names: containers adding a capability not allowed, in visit order;
#   capabilities: those capabilities, de-duplicated and sorted.
package pci.pss.capabilities_baseline

import data.lib.pci
import data.lib.pss

allowed := {c | some c in input.parameters.allowed_capabilities}

forbidden_adds(c) := [cap |
	some cap in pci.field_array(pci.field_object(pss.sc(c), "capabilities"), "add")
	not cap in allowed
]

bad := [pss.name(c) | some c in data.lib.pss.containers; count(forbidden_adds(c)) > 0]

caps := sort({sprintf("%v", [cap]) | some c in data.lib.pss.containers; some cap in forbidden_adds(c)})

violation contains {"msg": msg, "details": {"check": "capabilities_baseline"}} if {
	not data.lib.pss.skip
	not data.lib.pss.restricted_namespace
	count(bad) > 0
	msg := pss.message("non-default capabilities", sprintf("%s must not include %s in securityContext.capabilities.add", [pss.containers_phrase(bad), pci.join_quote(caps)]))
}
