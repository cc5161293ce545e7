# immutable-config: ConfigMaps and Secrets of cde namespaces are immutable (immutable: true), so
# configuration changes go through a new object and a rollout rather than an in-place edit.
# Names in `exempt_names` and Secret types in `exempt_secret_types` (rotated by controllers)
# are exempt. Action warn.
# PCI DSS 11.5.2, 6.5.1.
package pci.change.immutable_config

import data.lib.pci

exempt_object if pci.matches_any(input.parameters.exempt_names, data.lib.pci.name)

exempt_object if {
	data.lib.pci.kind == "Secret"
	object.get(data.lib.pci.obj, "type", "Opaque") in input.parameters.exempt_secret_types
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	not exempt_object
	not data.lib.pci.obj.immutable == true
	msg := sprintf("%s %s/%s is mutable: set immutable: true and roll out changes as a new object", [data.lib.pci.kind, data.lib.pci.namespace, data.lib.pci.name])
}
