# pss-proc-mount: Pod Security Standards baseline check `procMount` (Kubernetes v1.35+).
# PCI DSS 2.2.1, 2.2.6: an unmasked /proc exposes kernel interfaces to the container.
# Allowed: unset or a value in `allowed_proc_mount_types` (Default); any value when the pod
# sets spec.hostUsers: false (user namespace). In restricted namespaces (cde, connected)
# pss-proc-mount-restricted takes over, without the user-namespace relaxation.
#
# Message: procMount (<container|containers> "<names>" must not set securityContext.procMount
#          to "<values>")
#   names: visit order; values: de-duplicated and sorted.
package pci.pss.proc_mount

violation contains {"msg": msg, "details": {"check": "procMount"}} if {
	not data.lib.pss.skip
	not data.lib.pss.restricted_namespace
	not data.lib.pss.host_users_false
	msg := data.lib.pss.proc_mount_message
}
