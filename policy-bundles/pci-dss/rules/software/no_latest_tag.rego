# no-latest-tag: container images name a version: a tag other than `latest` or a digest (an
# image without tag and digest means `latest`), so the software inventory is exact.
# PCI DSS 6.3.2.
package pci.software.no_latest_tag

import data.lib.pci

floating(image) if {
	not pci.has_digest(image)
	not versioned(image)
}

# A tag other than `latest` (`tag` is undefined without one).
versioned(image) if pci.tag(image) != "latest"

violation contains {"msg": msg, "details": {"container": name, "image": image}} if {
	not data.lib.pci.exempt
	some c in data.lib.pci.pod_containers
	image := c.image
	is_string(image)
	floating(image)
	name := pci.container_name(c)
	msg := sprintf("container %s of pod %s uses image %s, which floats with `latest`: pin a version tag or digest", [name, data.lib.pci.name, image])
}
