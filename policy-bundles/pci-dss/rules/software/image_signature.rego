# image-signature: every container image that `images` names (globs of image references
# as glob.match reads them with no delimiters, so `*` spans `/`: e.g.
# "registry.example.com/payments/*") carries a cosign signature by one of `keys` (PEM
# public keys, ECDSA P-256, as `cosign generate-key-pair` writes cosign.pub) for the
# digest its reference names now: an unsigned image, one signed only by other keys and
# one whose tag moved since it was signed are denied. The registry is asked through the
# palisade.image_signature builtin (answers cached per tag and per digest for 60 s); a
# registry that does not answer within `registry_timeout_ms` makes the policy fail, and
# its failure mode (fail: deny) decides. The bundle turns the policy on only once
# `images` is set (enabled_by).
# PCI DSS 6.3.2, 11.5.1.
package pci.software.image_signature

# Self-contained (no lib/pci): the builtin keeps this policy on regorus's interpreter,
# where the library's rules would cost ~0.45 ms per Pod (benches/benches/image_signature.rs);
# `exempt_namespaces` globs mean what the library's do.

spec := object.get(input.review.object, "spec", {})

namespace := object.get(input.review.object, ["metadata", "namespace"], object.get(input.review, "namespace", ""))

pod := object.get(input.review.object, ["metadata", "name"], "")

exempt if {
	some pattern in input.parameters.exempt_namespaces
	glob.match(pattern, null, namespace)
}

checked contains [i, c.name, c.image] if {
	some list in ["initContainers", "containers", "ephemeralContainers"]
	some i, c in object.get(spec, list, [])
	is_string(c.image)
	some pattern in input.parameters.images
	glob.match(pattern, null, c.image)
}

options := {"plain_http": input.parameters.plain_http, "timeout_ms": input.parameters.registry_timeout_ms}

violation contains {"msg": msg, "details": {"container": name, "image": image}} if {
	count(input.parameters.keys) == 0
	not exempt
	some [_, name, image] in checked
	msg := sprintf("container %s of pod %s uses image %s, which must be signed, but the policy trusts no key: set image-signature's keys", [name, pod, image])
}

violation contains {"msg": msg, "details": {"container": name, "image": image, "digest": r.digest}} if {
	count(input.parameters.keys) > 0
	not exempt
	some [_, name, image] in checked
	r := palisade.image_signature(image, input.parameters.keys, options)
	not r.signed
	msg := sprintf("container %s of pod %s uses image %s, which is not signed by a trusted key: %s", [name, pod, image, r.reason])
}
