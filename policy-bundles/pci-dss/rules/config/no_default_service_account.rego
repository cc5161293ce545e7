# no-default-service-account: in-scope workloads run under a dedicated ServiceAccount, never
# the namespace's `default` one (a shared, vendor-default identity).
# PCI DSS 2.2.2, 8.2.2.
package pci.config.no_default_service_account

import data.lib.pci

service_account := sa if {
	sa := data.lib.pci.pod_spec.serviceAccountName
	is_string(sa)
	sa != ""
} else := sa if {
	sa := data.lib.pci.pod_spec.serviceAccount
	is_string(sa)
	sa != ""
} else := "default"

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	service_account == "default"
	msg := sprintf("pod %s runs as the default ServiceAccount of namespace %s: set spec.serviceAccountName to a dedicated ServiceAccount", [data.lib.pci.name, data.lib.pci.namespace])
}
