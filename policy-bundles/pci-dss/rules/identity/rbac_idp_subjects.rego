# rbac-idp-subjects: User and Group subjects of RoleBindings and ClusterRoleBindings come from the
# identity provider (name starts with one of `idp_prefixes`), and no User is a generic, shared
# account (its name, without prefix and e-mail domain, is not one of `generic_names`).
# Bindings of `exempt_bindings` (built-in ones) are exempt.
# PCI DSS 8.2.1, 8.2.2.
package pci.identity.rbac_idp_subjects

import data.lib.pci

idp_subjects := [s | some s in pci.field_array(data.lib.pci.obj, "subjects"); s.kind in {"User", "Group"}]

from_idp(name) if {
	some prefix in input.parameters.idp_prefixes
	startswith(name, prefix)
}

# The account part of a name: after the last ":" (IdP prefix) and before "@", lower-case.
account(name) := lower(split(parts[count(parts) - 1], "@")[0]) if parts := split(name, ":")

violation contains {"msg": msg, "details": {"subject": sprintf("%s:%s", [s.kind, name])}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_binding
	some s in idp_subjects
	name := sprintf("%v", [pci.get(s, "name", "")])
	not from_idp(name)
	msg := sprintf("%s binds %s %s, which does not come from the identity provider (prefix %s)", [data.lib.pci.display, s.kind, json.marshal(name), concat(" or ", input.parameters.idp_prefixes)])
}

violation contains {"msg": msg, "details": {"subject": sprintf("User:%s", [name])}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_binding
	some s in idp_subjects
	s.kind == "User"
	name := sprintf("%v", [pci.get(s, "name", "")])
	account(name) in input.parameters.generic_names
	msg := sprintf("%s binds User %s, a generic shared account: bind individual users or IdP groups", [data.lib.pci.display, json.marshal(name)])
}
