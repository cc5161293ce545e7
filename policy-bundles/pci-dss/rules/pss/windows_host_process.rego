# pss-windows-host-process: Pod Security Standards baseline check `windowsHostProcess`
# (Kubernetes v1.37). PCI DSS 2.2.1, 2.2.5: Windows HostProcess containers run as the node.
#
# Message: hostProcess (<setters> must not set securityContext.windowsOptions.hostProcess=true)
#   setters: "pod" (spec.securityContext.windowsOptions.hostProcess) and/or
#   `container(s) "<names>"` (visit order), joined by " and ".
package pci.pss.windows_host_process

import data.lib.pss

host_process(o) if o.windowsOptions.hostProcess == true

pod_bad := true if host_process(data.lib.pss.pod_sc)

else := false

bad := [pss.name(c) | some c in data.lib.pss.containers; host_process(pss.sc(c))]

violation contains {"msg": msg, "details": {"check": "windowsHostProcess"}} if {
	not data.lib.pss.skip
	detail_setters := pss.setters(pod_bad, bad)
	detail_setters != ""
	msg := pss.message("hostProcess", sprintf("%s must not set securityContext.windowsOptions.hostProcess=true", [detail_setters]))
}
