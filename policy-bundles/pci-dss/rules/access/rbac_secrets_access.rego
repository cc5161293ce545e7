# rbac-secrets-access: Roles and ClusterRoles do not grant reading Secrets (get, list or watch,
# or "*", on secrets in the core group) unless restricted to named Secrets with `get`
# (resourceNames). Roles of `exempt_roles` are exempt.
# PCI DSS 7.2.1, 7.2.2, 7.2.5.
package pci.access.rbac_secrets_access

import data.lib.pci

read_verbs := {"get", "list", "watch", "*"}

covers_secrets(rule) if {
	pci.core_group(rule)
	some r in {"secrets", "*"}
	r in pci.rule_resources(rule)
}

# get on named Secrets only: access to specific, known credentials.
named_only(rule) if {
	count(pci.field_array(rule, "resourceNames")) > 0
	pci.rule_verbs(rule) & read_verbs == {"get"}
}

violation contains {"msg": msg, "details": {"rule": i}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_role
	some i, rule in data.lib.pci.rbac_rules
	covers_secrets(rule)
	verbs := pci.rule_verbs(rule) & read_verbs
	count(verbs) > 0
	not named_only(rule)
	msg := sprintf("%s rules[%d] grants %s on secrets: limit Secret reads to get on named Secrets (resourceNames)", [data.lib.pci.display, i, concat(", ", sort(verbs))])
}
