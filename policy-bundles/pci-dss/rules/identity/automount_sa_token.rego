# automount-sa-token: in-scope ServiceAccounts set automountServiceAccountToken: false and pods
# do not turn it back on, so an API credential is only mounted where it is needed
# (`allowed_service_accounts`, "namespace/name" globs).
# PCI DSS 8.6.1, 8.6.3.
package pci.identity.automount_sa_token

import data.lib.pci

allowed(sa) if pci.matches_any(input.parameters.allowed_service_accounts, sprintf("%s/%s", [data.lib.pci.namespace, sa]))

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "ServiceAccount"
	not data.lib.pci.obj.automountServiceAccountToken == false
	not allowed(data.lib.pci.name)
	msg := sprintf("ServiceAccount %s/%s does not set automountServiceAccountToken: false", [data.lib.pci.namespace, data.lib.pci.name])
}

pod_service_account := object.get(data.lib.pci.pod_spec, "serviceAccountName", "default")

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Pod"
	data.lib.pci.pod_spec.automountServiceAccountToken == true
	not allowed(pod_service_account)
	msg := sprintf("pod %s sets automountServiceAccountToken: true for ServiceAccount %s, which is not allowed an API token", [data.lib.pci.name, pod_service_account])
}
