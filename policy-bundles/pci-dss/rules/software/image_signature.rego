# image-signature: every container image that `images` names (globs of image references,
# such as "registry.example.com/payments/*") carries a cosign signature by one of `keys`
# (PEM public keys, ECDSA P-256, as `cosign generate-key-pair` writes cosign.pub) for the
# digest its reference names now: an unsigned image, one signed only by other keys and
# one whose tag moved since it was signed are denied. The registry is asked through the
# palisade.image_signature builtin (answers cached per tag and per digest for 60 s); a
# registry that does not answer within `registry_timeout_ms` makes the policy fail, and
# its failure mode (fail: deny) decides. With `images` empty (the default) nothing is
# checked and no registry is asked.
# PCI DSS 6.3.2, 11.5.1.
package pci.software.image_signature

import data.lib.pci

required contains [c, image] if {
	some c in pci.pod_containers
	image := c.image
	is_string(image)
	pci.matches_any(input.parameters.images, image)
}

options := {"plain_http": input.parameters.plain_http, "timeout_ms": input.parameters.registry_timeout_ms}

violation contains {"msg": msg, "details": {"container": name, "image": image}} if {
	not pci.exempt
	count(input.parameters.keys) == 0
	some [c, image] in required
	name := pci.container_name(c)
	msg := sprintf("container %s of pod %s uses image %s, which must be signed, but the policy trusts no key: set image-signature's keys", [name, pci.name, image])
}

violation contains {"msg": msg, "details": {"container": name, "image": image, "digest": r.digest}} if {
	not pci.exempt
	count(input.parameters.keys) > 0
	some [c, image] in required
	r := palisade.image_signature(image, input.parameters.keys, options)
	not r.signed
	name := pci.container_name(c)
	msg := sprintf("container %s of pod %s uses image %s, which is not signed by a trusted key: %s", [name, pci.name, image, r.reason])
}
