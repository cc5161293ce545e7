# apiserver-audit-logging: the kube-apiserver (its static Pod, or any pod running a container
# of `container_names`) writes an audit log: --audit-policy-file is set, and so is
# --audit-log-path (a file; "-" only when `allow_stdout`) or --audit-webhook-config-file.
# Log retention flags, when set and non-zero, keep at least `min_log_maxage_days` days,
# `min_log_maxbackup` files and `min_log_maxsize_mb` megabytes per file (0 or unset means
# no limit). Applies in every namespace, system ones included.
# PCI DSS 10.2.1, 10.2.2, 10.5.1.
package pci.logging.apiserver_audit_logging

import data.lib.pci

apiserver(c) if pci.container_name(c) in input.parameters.container_names

apiserver(c) if {
	args := pci.container_args(c)
	count(args) > 0
	parts := split(args[0], "/")
	parts[count(parts) - 1] in input.parameters.container_names
}

flag(c, name) := v if {
	v := pci.flag_value(pci.container_args(c), name)
	v != ""
}

log_path(c) := p if {
	p := flag(c, "--audit-log-path")
	p != "-"
}

log_path(c) := p if {
	p := flag(c, "--audit-log-path")
	p == "-"
	input.parameters.allow_stdout
}

destination(c) if log_path(c)

destination(c) if flag(c, "--audit-webhook-config-file")

apiservers := [c | some c in data.lib.pci.pod_containers; apiserver(c)]

problems contains [pci.container_name(c), "--audit-policy-file is not set"] if {
	some c in apiservers
	not flag(c, "--audit-policy-file")
}

problems contains [pci.container_name(c), "neither --audit-log-path (to a file) nor --audit-webhook-config-file is set"] if {
	some c in apiservers
	not destination(c)
}

retention := [
	["--audit-log-maxage", "min_log_maxage_days"],
	["--audit-log-maxbackup", "min_log_maxbackup"],
	["--audit-log-maxsize", "min_log_maxsize_mb"],
]

problems contains [pci.container_name(c), sprintf("%s=%s is below the minimum of %d", [name, value, minimum])] if {
	some c in apiservers
	log_path(c)
	some r in retention
	name := r[0]
	minimum := input.parameters[r[1]]
	value := flag(c, name)
	regex.match(`^[0-9]+$`, value)
	n := to_number(value)
	n > 0
	n < minimum
}

violation contains {"msg": msg} if {
	some p in problems
	msg := sprintf("kube-apiserver container %s of pod %s: audit logging: %s", [p[0], data.lib.pci.name, p[1]])
}
