# node-security-level: every Node carries a security level (label
# `pci-dss.palisade.dev/security-level`, one of `allowed_levels` when that list is not empty),
# so that workloads can be placed on servers of their own level.
# PCI DSS 2.2.3.
package pci.config.node_security_level

import data.lib.pci

level := pci.labels(data.lib.pci.obj)[data.lib.pci.level_label]

violation contains {"msg": msg} if {
	not level
	msg := sprintf("node %s has no security level: set label %s", [data.lib.pci.name, data.lib.pci.level_label])
}

violation contains {"msg": msg} if {
	allowed := input.parameters.allowed_levels
	count(allowed) > 0
	is_string(level)
	not level in allowed
	msg := sprintf("node %s has security level %s, expected one of %s", [data.lib.pci.name, json.marshal(level), concat(", ", [sprintf("%v", [a]) | some a in allowed])])
}
