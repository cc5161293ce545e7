# log-shipper-present: the cluster runs a log-shipping DaemonSet (one named, or labelled
# app.kubernetes.io/name, as an entry of `daemonsets`) that sends logs to central storage
# where they are kept. Reported on each cde Namespace.
# PCI DSS 10.2.1, 10.3.3, 10.5.1. Referential: reads DaemonSets from the inventory.
package pci.logging.log_shipper_present

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
	msg := sprintf("no log-shipping DaemonSet (%s) runs in the cluster that hosts cde namespace %s", [concat(", ", input.parameters.daemonsets), data.lib.pci.namespace])
}
