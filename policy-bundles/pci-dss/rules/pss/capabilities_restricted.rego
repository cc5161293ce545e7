# pss-capabilities-restricted: Pod Security Standards restricted check `capabilities_restricted`
# (Kubernetes v1.25+). PCI DSS 2.2.1, 2.2.6: every container drops ALL capabilities and adds
# only `allowed_add_capabilities` (NET_BIND_SERVICE). Windows pods are exempt.
#
# Message: unrestricted capabilities (<part>[; <part>])
#   `<container|containers> "<names>" must set securityContext.capabilities.drop=["ALL"]`
#     (containers whose drop list lacks "ALL", visit order), then
#   `<container|containers> "<names>" must not include "<caps>" in securityContext.capabilities.add`
#     (containers adding other capabilities, visit order; caps de-duplicated and sorted).
package pci.pss.capabilities_restricted

import data.lib.pci
import data.lib.pss

caps(c) := pci.field_object(pss.sc(c), "capabilities")

drops_all(c) if "ALL" in pci.field_array(caps(c), "drop")

forbidden_adds(c) := [cap |
	some cap in pci.field_array(caps(c), "add")
	not cap in input.parameters.allowed_add_capabilities
]

missing_drop := [pss.name(c) | some c in data.lib.pss.containers; not drops_all(c)]

adding := [pss.name(c) | some c in data.lib.pss.containers; count(forbidden_adds(c)) > 0]

forbidden := sort({sprintf("%v", [cap]) | some c in data.lib.pss.containers; some cap in forbidden_adds(c)})

parts := array.concat(
	[sprintf(`%s must set securityContext.capabilities.drop=["ALL"]`, [pss.containers_phrase(missing_drop)]) | count(missing_drop) > 0],
	[sprintf("%s must not include %s in securityContext.capabilities.add", [pss.containers_phrase(adding), pci.join_quote(forbidden)]) | count(adding) > 0],
)

violation contains {"msg": msg, "details": {"check": "capabilities_restricted"}} if {
	not data.lib.pss.skip
	not data.lib.pss.windows
	count(parts) > 0
	msg := pss.message("unrestricted capabilities", concat("; ", parts))
}
