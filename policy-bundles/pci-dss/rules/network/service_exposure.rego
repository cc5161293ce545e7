# service-exposure: cde and connected namespaces expose nothing to untrusted networks: no
# Service of an `exposed_service_types` type (LoadBalancer, NodePort) and no Ingress; public
# entry points belong in a dmz namespace.
# PCI DSS 1.4.1, 1.4.2.
package pci.network.service_exposure

import data.lib.pci

violation contains {"msg": msg, "details": {"type": type}} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Service"
	type := data.lib.pci.obj.spec.type
	type in input.parameters.exposed_service_types
	msg := sprintf("Service %s/%s is of type %s in %s namespace: expose services to untrusted networks only from a dmz namespace", [data.lib.pci.namespace, data.lib.pci.name, type, data.lib.pci.scope])
}

violation contains {"msg": msg, "details": {"type": "Ingress"}} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Ingress"
	msg := sprintf("Ingress %s/%s in %s namespace: public entry points belong in a dmz namespace", [data.lib.pci.namespace, data.lib.pci.name, data.lib.pci.scope])
}
