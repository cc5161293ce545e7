# pss-restricted-volumes: Pod Security Standards restricted check `restrictedVolumes`
# (Kubernetes v1.37). PCI DSS 2.2.1, 2.2.6: volumes use only `allowed_volume_types`
# (configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected,
# secret); replaces pss-host-path-volumes in restricted namespaces. A volume that sets no
# source is an emptyDir, as the API server defaults it.
#
# Message: restricted volume types (<volume|volumes> "<names>" <uses|use>
#          <restricted volume type|restricted volume types> "<types>")
#   names: volumes with no allowed source, in spec order; types: for each, the first set
#   field of upstream's list (hostPath, gcePersistentDisk, ..., storageos) or "unknown",
#   de-duplicated and sorted.
package pci.pss.restricted_volumes

import data.lib.pci
import data.lib.pss

# Upstream's order: the first set field names the volume's type in the message.
known_types := [
	"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
	"glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
	"vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
	"scaleIO", "storageos",
]

allowed(v) if {
	some t in input.parameters.allowed_volume_types
	pss.has(v, t)
}

# The API server defaults a volume that sets no source to `emptyDir: {}`
# (SetDefaults_Volume), so such a volume is judged as one.
allowed(v) if {
	count([k | some k, x in v; k != "name"; x != null]) == 0
	"emptyDir" in input.parameters.allowed_volume_types
}

type_of(v) := t if {
	set := [k | some k in known_types; pss.has(v, k)]
	count(set) > 0
	t := set[0]
} else := "unknown"

bad := [v | some v in pci.field_array(data.lib.pss.spec, "volumes"); not allowed(v)]

names := [pci.container_name(v) | some v in bad]

types := sort({type_of(v) | some v in bad})

violation contains {"msg": msg, "details": {"check": "restrictedVolumes"}} if {
	not data.lib.pss.skip
	count(bad) > 0
	msg := pss.message("restricted volume types", sprintf("%s %s %s %s %s", [
		pci.pluralize("volume", "volumes", count(names)),
		pci.join_quote(names),
		pci.pluralize("uses", "use", count(names)),
		pci.pluralize("restricted volume type", "restricted volume types", count(types)),
		pci.join_quote(types),
	]))
}
