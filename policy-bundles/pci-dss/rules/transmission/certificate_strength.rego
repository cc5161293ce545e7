# certificate-strength: cert-manager Certificates use strong keys (RSA of at least
# `min_rsa_bits`, ECDSA of at least `min_ecdsa_bits`, or Ed25519) and live at most
# `max_duration_hours` (2160 h = 90 days), so certificates are rotated often.
# cert-manager's defaults apply to unset fields: RSA 2048 (ECDSA 256) and 90 days.
# PCI DSS 4.2.1.
package pci.transmission.certificate_strength

import data.lib.pci

spec := pci.field_object(data.lib.pci.obj, "spec")

key := pci.field_object(spec, "privateKey")

algorithm := object.get(key, "algorithm", "RSA")

default_size := {"RSA": 2048, "ECDSA": 256}

size := s if {
	s := key.size
	is_number(s)
} else := default_size[algorithm]

min_size := {"RSA": input.parameters.min_rsa_bits, "ECDSA": input.parameters.min_ecdsa_bits}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	not algorithm in {"RSA", "ECDSA", "Ed25519"}
	msg := sprintf("Certificate %s/%s uses private key algorithm %s: use RSA, ECDSA or Ed25519", [data.lib.pci.namespace, data.lib.pci.name, json.marshal(algorithm)])
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	size < min_size[algorithm]
	msg := sprintf("Certificate %s/%s uses a %d-bit %s key: at least %d bits are required", [data.lib.pci.namespace, data.lib.pci.name, size, algorithm, min_size[algorithm]])
}

valid_duration(d) if regex.match(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, d)

duration_ns := time.parse_duration_ns(spec.duration) if {
	is_string(spec.duration)
	valid_duration(spec.duration)
}

max_ns := input.parameters.max_duration_hours * 3600000000000

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	pci.has_key(spec, "duration")
	not duration_ns
	msg := sprintf("Certificate %s/%s has an invalid spec.duration %s", [data.lib.pci.namespace, data.lib.pci.name, json.marshal(spec.duration)])
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	duration_ns > max_ns
	msg := sprintf("Certificate %s/%s is valid for %s, longer than %dh: shorten spec.duration so it is rotated", [data.lib.pci.namespace, data.lib.pci.name, spec.duration, input.parameters.max_duration_hours])
}
