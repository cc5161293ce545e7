# read-only-root-filesystem: containers of cde pods run with a read-only root file system
# (securityContext.readOnlyRootFilesystem: true), so files of a running container cannot be
# changed unnoticed; writable paths are explicit volumes.
# PCI DSS 11.5.2.
package pci.change.read_only_root_filesystem

import data.lib.pci

bad := [pci.container_name(c) |
	some c in data.lib.pci.pod_containers
	not pci.field_object(c, "securityContext").readOnlyRootFilesystem == true
]

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	some name in bad
	msg := sprintf("container %s of pod %s does not set securityContext.readOnlyRootFilesystem=true", [name, data.lib.pci.name])
}
