# rbac-no-anonymous: no RoleBinding or ClusterRoleBinding grants anything to unauthenticated
# requests (`forbidden_subjects`: User system:anonymous, Group system:unauthenticated).
# Bindings of `exempt_bindings` (system:public-info-viewer: health and version endpoints)
# are exempt.
# PCI DSS 8.2.1, 8.3.1.
package pci.identity.rbac_no_anonymous

import data.lib.pci

violation contains {"msg": msg, "details": {"subject": subject}} if {
	not data.lib.pci.exempt
	not data.lib.pci.exempt_binding
	some subject in data.lib.pci.subjects
	subject in input.parameters.forbidden_subjects
	msg := sprintf("%s grants %s to %s: every access must be authenticated", [data.lib.pci.display, object.get(data.lib.pci.obj, ["roleRef", "name"], ""), subject])
}
