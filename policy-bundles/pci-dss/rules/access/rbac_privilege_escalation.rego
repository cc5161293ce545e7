# rbac-privilege-escalation: Roles and ClusterRoles do not grant the verbs that escalate
# privileges (`escalation_verbs`: escalate, bind, impersonate) nor access to
# `escalation_resources` (pods/exec, pods/attach), which runs commands as any pod's identity.
# Roles of `exempt_roles` are exempt.
# PCI DSS 7.2.1, 7.2.2, 7.2.5.
package pci.access.rbac_privilege_escalation

import data.lib.pci

violation contains {"msg": msg, "details": {"rule": i}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_role
	some i, rule in data.lib.pci.rbac_rules
	verbs := pci.rule_verbs(rule) & {v | some v in input.parameters.escalation_verbs}
	count(verbs) > 0
	msg := sprintf("%s rules[%d] grants %s: these verbs let a user exceed the permissions granted", [data.lib.pci.display, i, concat(", ", sort(verbs))])
}

violation contains {"msg": msg, "details": {"rule": i}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_role
	some i, rule in data.lib.pci.rbac_rules
	resources := pci.rule_resources(rule) & {r | some r in input.parameters.escalation_resources}
	count(resources) > 0
	count(pci.rule_verbs(rule) & {"create", "get", "*"}) > 0
	msg := sprintf("%s rules[%d] grants access to %s: commands in pods run with the pods' identities", [data.lib.pci.display, i, concat(", ", sort(resources))])
}
