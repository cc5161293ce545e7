# image-digest: container images of cde pods are pinned by digest (`@sha256:<64 hex>`), so what
# runs is exactly what was scanned and approved.
# PCI DSS 6.3.2, 6.5.1.
package pci.software.image_digest

import data.lib.pci

violation contains {"msg": msg, "details": {"container": name, "image": image}} if {
	not data.lib.pci.exempt
	some c in data.lib.pci.pod_containers
	image := pci.get(c, "image", "")
	not pci.has_digest(sprintf("%v", [image]))
	name := pci.container_name(c)
	msg := sprintf("container %s of pod %s uses image %s, not pinned by digest: use <image>@sha256:<digest>", [name, data.lib.pci.name, json.marshal(image)])
}
