# ingress-cert-manager: Ingresses with TLS name a cert-manager issuer (one of
# `issuer_annotations`, from `allowed_issuers` when that list is not empty), so their
# certificates are issued and rotated automatically.
# PCI DSS 4.2.1.
package pci.transmission.ingress_cert_manager

import data.lib.pci

issuers := [v |
	some key in input.parameters.issuer_annotations
	v := pci.annotations(data.lib.pci.obj)[key]
	is_string(v)
	v != ""
]

uses_tls if count(pci.field_array(pci.field_object(data.lib.pci.obj, "spec"), "tls")) > 0

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	uses_tls
	count(issuers) == 0
	msg := sprintf("Ingress %s/%s uses TLS without a cert-manager issuer: annotate it with %s", [data.lib.pci.namespace, data.lib.pci.name, concat(" or ", input.parameters.issuer_annotations)])
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	uses_tls
	allowed := input.parameters.allowed_issuers
	count(allowed) > 0
	some issuer in issuers
	not issuer in allowed
	msg := sprintf("Ingress %s/%s uses issuer %s, which is not one of %s", [data.lib.pci.namespace, data.lib.pci.name, issuer, concat(", ", allowed)])
}
