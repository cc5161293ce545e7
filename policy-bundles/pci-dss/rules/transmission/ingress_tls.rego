# ingress-tls: every host an Ingress serves is covered by a `tls` entry (exactly, or by a
# `*.domain` wildcard for one label), so cardholder data only travels over TLS.
# PCI DSS 4.2.1.
package pci.transmission.ingress_tls

import data.lib.pci

spec := pci.field_object(data.lib.pci.obj, "spec")

tls_hosts := {h | some t in pci.field_array(spec, "tls"); some h in pci.field_array(t, "hosts")}

covered(host) if host in tls_hosts

covered(host) if {
	parts := split(host, ".")
	count(parts) > 2
	wildcard := concat(".", array.concat(["*"], array.slice(parts, 1, count(parts))))
	wildcard in tls_hosts
}

violation contains {"msg": msg, "details": {"host": host}} if {
	not data.lib.pci.exempt
	some rule in pci.field_array(spec, "rules")
	host := rule.host
	is_string(host)
	not covered(host)
	msg := sprintf("Ingress %s/%s serves host %s without TLS: add it to spec.tls[].hosts", [data.lib.pci.namespace, data.lib.pci.name, host])
}

violation contains {"msg": msg, "details": {"host": ""}} if {
	not data.lib.pci.exempt
	count(pci.field_array(spec, "tls")) == 0
	catch_all
	msg := sprintf("Ingress %s/%s serves requests for any host without TLS: add a spec.tls entry", [data.lib.pci.namespace, data.lib.pci.name])
}

# A rule without host, or a default backend: traffic for any host name.
catch_all if {
	some rule in pci.field_array(spec, "rules")
	not is_string(rule.host)
}

catch_all if pci.has_key(spec, "defaultBackend")
