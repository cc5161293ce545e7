# pss-host-namespaces: Pod Security Standards baseline check `hostNamespaces` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.5: sharing the node's network, PID or IPC namespace breaks isolation
# (host-network pods also escape NetworkPolicies).
#
# Message: host namespaces (<hostNetwork=true, hostPID=true, hostIPC=true>)
#   the fields set to true, in that fixed order, joined by ", ".
package pci.pss.host_namespaces

import data.lib.pss

set_fields := [sprintf("%s=true", [f]) | some f in ["hostNetwork", "hostPID", "hostIPC"]; data.lib.pss.spec[f] == true]

violation contains {"msg": msg, "details": {"check": "hostNamespaces"}} if {
	not data.lib.pss.skip
	count(set_fields) > 0
	msg := pss.message("host namespaces", concat(", ", set_fields))
}
