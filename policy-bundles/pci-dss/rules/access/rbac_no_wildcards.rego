# rbac-no-wildcards: Roles and ClusterRoles grant named verbs, resources and API groups, never
# "*" (least privilege). Roles of `exempt_roles` (built-in ones) are exempt.
# PCI DSS 7.2.1, 7.2.2.
package pci.access.rbac_no_wildcards

import data.lib.pci

wildcards(rule) := [field |
	some field in ["verbs", "apiGroups", "resources", "nonResourceURLs"]
	"*" in pci.field_array(rule, field)
]

violation contains {"msg": msg, "details": {"rule": i}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_role
	some i, rule in data.lib.pci.rbac_rules
	fields := wildcards(rule)
	count(fields) > 0
	msg := sprintf("%s rules[%d] uses \"*\" in %s: grant only the verbs, resources and API groups needed", [data.lib.pci.display, i, concat(", ", fields)])
}
