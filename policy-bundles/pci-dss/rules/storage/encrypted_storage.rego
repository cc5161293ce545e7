# encrypted-storage: PersistentVolumeClaims of cde namespaces (and StatefulSet
# volumeClaimTemplates) use a StorageClass known to encrypt data at rest: one named in
# `encrypted_storage_classes`, or one whose parameters (from the inventory) contain an
# `encryption_parameters` entry (key, and value when given). A claim without a class uses
# the cluster's default StorageClass; `storageClassName: ""` (static binding) cannot be
# verified and is reported.
# PCI DSS 3.5.1. Referential: reads StorageClasses from the inventory.
package pci.storage.encrypted_storage

import data.lib.pci

storage_classes := object.get(data.inventory, ["cluster", "storage.k8s.io/v1", "StorageClass"], {})

default_classes := [n |
	some n, sc in storage_classes
	pci.annotations(sc)["storageclass.kubernetes.io/is-default-class"] == "true"
]

# (claim description, its spec) for every claim the object defines.
claims contains [sprintf("PersistentVolumeClaim %s", [data.lib.pci.name]), pci.field_object(data.lib.pci.obj, "spec")] if data.lib.pci.kind == "PersistentVolumeClaim"

claims contains [sprintf("volumeClaimTemplate %s of StatefulSet %s", [pci.metadata_name(t), data.lib.pci.name]), pci.field_object(t, "spec")] if {
	data.lib.pci.kind == "StatefulSet"
	some t in pci.field_array(pci.field_object(data.lib.pci.obj, "spec"), "volumeClaimTemplates")
}

# The class a claim uses: its storageClassName, else the default class ("" when none).
class_of(spec) := c if {
	c := spec.storageClassName
	is_string(c)
} else := c if {
	count(default_classes) > 0
	c := sort(default_classes)[0]
} else := ""

encrypts(class) if class in input.parameters.encrypted_storage_classes

encrypts(class) if {
	params := pci.field_object(storage_classes[class], "parameters")
	some p in input.parameters.encryption_parameters
	value := params[p.key]
	matches_value(p, value)
}

matches_value(p, _) if not pci.has_key(p, "value")

matches_value(p, value) if lower(sprintf("%v", [value])) == lower(p.value)

violation contains {"msg": msg, "details": {"storageClass": class}} if {
	not data.lib.pci.exempt
	some claim in claims
	what := claim[0]
	class := class_of(claim[1])
	class != ""
	not encrypts(class)
	msg := sprintf("%s in namespace %s uses StorageClass %s, which is not known to encrypt data at rest (list it in encrypted_storage_classes or set an encryption parameter)", [what, data.lib.pci.namespace, class])
}

violation contains {"msg": msg, "details": {"storageClass": ""}} if {
	not data.lib.pci.exempt
	some claim in claims
	what := claim[0]
	class_of(claim[1]) == ""
	msg := sprintf("%s in namespace %s has no StorageClass (storageClassName \"\", or none and no default class): encryption at rest cannot be verified", [what, data.lib.pci.namespace])
}
