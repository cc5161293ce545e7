# gateway-https-only: Gateway API listeners use a protocol of `allowed_protocols` (HTTPS,
# TLS); terminating listeners (tls.mode Terminate, the default) reference a certificate.
# PCI DSS 4.2.1.
package pci.transmission.gateway_https_only

import data.lib.pci

listeners := pci.field_array(pci.field_object(data.lib.pci.obj, "spec"), "listeners")

violation contains {"msg": msg, "details": {"listener": pci.container_name(listener)}} if {
	not data.lib.pci.exempt
	some listener in listeners
	not listener.protocol in input.parameters.allowed_protocols
	msg := sprintf("Gateway %s/%s listener %s uses protocol %s: use HTTPS or TLS", [data.lib.pci.namespace, data.lib.pci.name, pci.container_name(listener), json.marshal(pci.get(listener, "protocol", ""))])
}

violation contains {"msg": msg, "details": {"listener": pci.container_name(listener)}} if {
	not data.lib.pci.exempt
	some listener in listeners
	listener.protocol in input.parameters.allowed_protocols
	tls := pci.field_object(listener, "tls")
	object.get(tls, "mode", "Terminate") == "Terminate"
	count(pci.field_array(tls, "certificateRefs")) == 0
	msg := sprintf("Gateway %s/%s listener %s terminates TLS without tls.certificateRefs", [data.lib.pci.namespace, data.lib.pci.name, pci.container_name(listener)])
}
