# security-level-placement: pods of in-scope namespaces are constrained to nodes of their
# namespace's security level, by nodeSelector or by a required node affinity whose every
# term requires the level label to equal that level.
# PCI DSS 2.2.3.
package pci.config.security_level_placement

import data.lib.pci

level := data.lib.pci.namespace_level

spec := data.lib.pci.pod_spec

by_node_selector if pci.field_object(spec, "nodeSelector")[data.lib.pci.level_label] == level

terms := pci.field_array(
	pci.field_object(pci.field_object(pci.field_object(spec, "affinity"), "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution"),
	"nodeSelectorTerms",
)

# The term only admits nodes of the level: `In` with exactly the level.
pins_level(term) if {
	some expr in pci.field_array(term, "matchExpressions")
	expr.key == data.lib.pci.level_label
	expr.operator == "In"
	count(pci.field_array(expr, "values")) > 0
	every v in expr.values {
		v == level
	}
}

by_affinity if {
	count(terms) > 0
	every term in terms {
		pins_level(term)
	}
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	level != ""
	not by_node_selector
	not by_affinity
	msg := sprintf("pod %s may be scheduled on nodes of any security level: require node label %s=%s (nodeSelector or required node affinity)", [data.lib.pci.name, data.lib.pci.level_label, level])
}
