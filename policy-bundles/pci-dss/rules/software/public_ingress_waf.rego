# public-ingress-waf: Ingresses of dmz namespaces (the public entry points) enable a web
# application firewall: one annotation of `waf_annotations` with its value ("*" accepts any
# non-empty value), e.g. ModSecurity with the OWASP core rules on ingress-nginx or an AWS WAF
# ACL on the ALB controller.
# PCI DSS 6.4.1, 6.4.2.
package pci.software.public_ingress_waf

import data.lib.pci

waf_enabled if {
	some key, want in input.parameters.waf_annotations
	value := pci.annotations(data.lib.pci.obj)[key]
	is_string(value)
	accepted(want, value)
}

accepted("*", value) if trim_space(value) != ""

accepted(want, value) if {
	want != "*"
	lower(trim_space(value)) == lower(want)
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	not waf_enabled
	msg := sprintf("public Ingress %s/%s does not enable a web application firewall: set one of %s", [data.lib.pci.namespace, data.lib.pci.name, concat(", ", sort([k | some k, _ in input.parameters.waf_annotations]))])
}
