# pss-host-probes-lifecycle: Pod Security Standards baseline check `hostProbesAndHostLifecycle`
# (Kubernetes v1.34+). PCI DSS 2.2.1, 2.2.6: a probe or lifecycle hook with a host makes the
# kubelet connect to arbitrary addresses (any non-empty host is forbidden, localhost too).
#
# Message: probe or lifecycle host (<container|containers> "<names>" <uses|use>
#          <probe or lifecycle host|probe or lifecycle hosts> "<hosts>")
#   names: containers with a forbidden host, de-duplicated and sorted;
#   hosts: the hosts, de-duplicated and sorted. Checked: liveness/readiness/startup
#   probes and postStart/preStop handlers, their httpGet.host and tcpSocket.host.
package pci.pss.host_probes_lifecycle

import data.lib.pci
import data.lib.pss

handlers(c) := array.concat(
	[c[p] | some p in ["livenessProbe", "readinessProbe", "startupProbe"]],
	[pci.field_object(c, "lifecycle")[h] | some h in ["postStart", "preStop"]],
)

hosts(c) := [h |
	some handler in handlers(c)
	some kind in ["httpGet", "tcpSocket"]
	h := handler[kind].host
	is_string(h)
	h != ""
]

bad := sort({pss.name(c) | some c in data.lib.pss.containers; count(hosts(c)) > 0})

forbidden := sort({h | some c in data.lib.pss.containers; some h in hosts(c)})

violation contains {"msg": msg, "details": {"check": "hostProbesAndHostLifecycle"}} if {
	not data.lib.pss.skip
	count(bad) > 0
	msg := pss.message("probe or lifecycle host", sprintf("%s %s %s %s", [
		pss.containers_phrase(bad),
		pci.pluralize("uses", "use", count(bad)),
		pci.pluralize("probe or lifecycle host", "probe or lifecycle hosts", count(forbidden)),
		pci.join_quote(forbidden),
	]))
}
