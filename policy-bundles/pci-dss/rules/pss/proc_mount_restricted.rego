# pss-proc-mount-restricted: Pod Security Standards restricted check `procMount_restricted`
# (Kubernetes v1.35+). PCI DSS 2.2.1, 2.2.6: in restricted namespaces /proc stays masked even
# for user-namespaced pods (no hostUsers relaxation). Allowed: unset or a value in
# `allowed_proc_mount_types` (Default).
#
# Message: procMount (<container|containers> "<names>" must not set securityContext.procMount
#          to "<values>")
#   names: visit order; values: de-duplicated and sorted.
package pci.pss.proc_mount_restricted

violation contains {"msg": msg, "details": {"check": "procMount_restricted"}} if {
	not data.lib.pss.skip
	msg := data.lib.pss.proc_mount_message
}
