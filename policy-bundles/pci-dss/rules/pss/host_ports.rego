# pss-host-ports: Pod Security Standards baseline check `hostPorts` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.5: host ports open services on the node, outside NetworkPolicies.
#
# Message: hostPort (<container|containers> "<names>" <uses|use> <hostPort|hostPorts> <ports>)
#   names: containers with a non-zero ports[*].hostPort, in visit order;
#   ports: the non-zero host ports as decimal strings, de-duplicated and sorted as
#   strings ("100" < "20"), joined by ", ", not quoted.
package pci.pss.host_ports

import data.lib.pci
import data.lib.pss

host_ports(c) := [p.hostPort |
	some p in pci.field_array(c, "ports")
	is_number(p.hostPort)
	p.hostPort != 0
]

bad := [pss.name(c) | some c in data.lib.pss.containers; count(host_ports(c)) > 0]

ports := sort({format_int(p, 10) | some c in data.lib.pss.containers; some p in host_ports(c)})

violation contains {"msg": msg, "details": {"check": "hostPorts"}} if {
	not data.lib.pss.skip
	count(bad) > 0
	msg := pss.message("hostPort", sprintf("%s %s %s %s", [
		pss.containers_phrase(bad),
		pci.pluralize("uses", "use", count(bad)),
		pci.pluralize("hostPort", "hostPorts", count(ports)),
		concat(", ", ports),
	]))
}
