# ingress-https-only: no Ingress annotation lets clients use plain HTTP. `insecure_annotations`
# maps annotation names to the value (case-insensitive, one item of a comma-separated list)
# that allows HTTP, e.g. nginx.ingress.kubernetes.io/ssl-redirect: "false".
# PCI DSS 4.2.1.
package pci.transmission.ingress_https_only

import data.lib.pci

violation contains {"msg": msg, "details": {"annotation": key}} if {
	not data.lib.pci.exempt
	some key, insecure in input.parameters.insecure_annotations
	value := pci.annotations(data.lib.pci.obj)[key]
	is_string(value)
	some item in split(value, ",")
	lower(trim_space(item)) == lower(insecure)
	msg := sprintf("Ingress %s/%s allows plain HTTP (%s: %s): serve it over HTTPS only", [data.lib.pci.namespace, data.lib.pci.name, key, json.marshal(value)])
}
