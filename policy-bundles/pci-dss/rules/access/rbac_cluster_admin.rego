# rbac-cluster-admin: bindings to an administrator role of `admin_roles` (cluster-admin) name
# only subjects of `allowed_subjects` ("Kind:name", globs; the break-glass group
# system:masters by default). Bindings of `exempt_bindings` are exempt.
# PCI DSS 7.2.1, 7.2.2, 7.2.5.
package pci.access.rbac_cluster_admin

import data.lib.pci

role := object.get(data.lib.pci.obj, ["roleRef", "name"], "")

violation contains {"msg": msg, "details": {"subject": subject}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_binding
	object.get(data.lib.pci.obj, ["roleRef", "kind"], "") == "ClusterRole"
	role in input.parameters.admin_roles
	some subject in data.lib.pci.subjects
	not pci.matches_any(input.parameters.allowed_subjects, subject)
	msg := sprintf("%s grants %s to %s: administrator access is reserved for %s", [data.lib.pci.display, role, subject, concat(", ", input.parameters.allowed_subjects)])
}
