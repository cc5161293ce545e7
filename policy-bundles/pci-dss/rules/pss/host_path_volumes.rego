# pss-host-path-volumes: Pod Security Standards baseline check `hostPathVolumes` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.6: hostPath volumes expose the node's file system.
# In restricted namespaces (cde, connected) pss-restricted-volumes takes over, as upstream's
# restricted profile overrides this check.
#
# Message: hostPath volumes (<volume|volumes> "<names>")
#   names: volumes with hostPath set, in spec order.
package pci.pss.host_path_volumes

import data.lib.pci
import data.lib.pss

bad := [pci.container_name(v) | some v in pci.field_array(data.lib.pss.spec, "volumes"); pss.has(v, "hostPath")]

violation contains {"msg": msg, "details": {"check": "hostPathVolumes"}} if {
	not data.lib.pss.skip
	not data.lib.pss.restricted_namespace
	count(bad) > 0
	msg := pss.message("hostPath volumes", sprintf("%s %s", [pci.pluralize("volume", "volumes", count(bad)), pci.join_quote(bad)]))
}
