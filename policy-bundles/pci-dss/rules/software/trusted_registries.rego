# trusted-registries: every container image (init and ephemeral containers included) comes
# from a registry or repository of `allowed_registries` (prefixes such as
# "registry.example.com/"; a prefix without a trailing "/" matches whole path components),
# where images are scanned and their provenance is known.
# PCI DSS 6.3.1, 6.3.2.
package pci.software.trusted_registries

import data.lib.pci

trusted(image) if {
	some prefix in input.parameters.allowed_registries
	endswith(prefix, "/")
	startswith(image, prefix)
}

trusted(image) if {
	some prefix in input.parameters.allowed_registries
	not endswith(prefix, "/")
	some sep in ["/", ":", "@"]
	startswith(image, concat("", [prefix, sep]))
}

violation contains {"msg": msg, "details": {"container": name, "image": image}} if {
	not data.lib.pci.exempt
	some c in data.lib.pci.pod_containers
	image := c.image
	is_string(image)
	not trusted(image)
	name := pci.container_name(c)
	msg := sprintf("container %s of pod %s uses image %s from an untrusted registry (allowed: %s)", [name, data.lib.pci.name, image, concat(", ", input.parameters.allowed_registries)])
}
