# network-pod-coverage: every pod (and workload template) in a cde namespace is selected by at
# least one NetworkPolicy of its namespace, so no CDE pod has unrestricted traffic.
# PCI DSS 1.3.1. Referential: reads the namespace's NetworkPolicies from the inventory.
package pci.network.pod_coverage

import data.lib.pci

pod_labels := pci.labels(data.lib.pci.obj)

selected if {
	some name
	p := data.inventory.namespace[data.lib.pci.namespace]["networking.k8s.io/v1"].NetworkPolicy[name]
	pci.selector_matches(pci.field_object(pci.field_object(p, "spec"), "podSelector"), pod_labels)
}

violation contains {"msg": msg, "details": {"namespace": data.lib.pci.namespace, "labels": pod_labels}} if {
	not data.lib.pci.exempt
	not selected
	msg := sprintf("pod %s (labels %s) is not selected by any NetworkPolicy in namespace %s", [data.lib.pci.name, json.marshal(pod_labels), data.lib.pci.namespace])
}
