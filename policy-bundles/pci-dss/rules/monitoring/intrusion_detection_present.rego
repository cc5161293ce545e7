# intrusion-detection-present: the cluster runs an intrusion-detection DaemonSet (one named, or
# labelled app.kubernetes.io/name, as an entry of `daemonsets`: Falco by default) in any
# namespace. Reported on each cde Namespace.
# PCI DSS 11.5.1. Referential: reads DaemonSets from the inventory.
package pci.monitoring.intrusion_detection_present

import data.lib.pci

present if {
	some ns, name
	ds := data.inventory.namespace[ns]["apps/v1"].DaemonSet[name]
	some wanted in input.parameters.daemonsets
	is_wanted(name, ds, wanted)
}

is_wanted(name, _, wanted) if name == wanted

is_wanted(_, ds, wanted) if pci.labels(ds)["app.kubernetes.io/name"] == wanted

violation contains {"msg": msg} if {
	not present
	msg := sprintf("no intrusion-detection DaemonSet (%s) runs in the cluster that hosts cde namespace %s", [concat(", ", input.parameters.daemonsets), data.lib.pci.namespace])
}
