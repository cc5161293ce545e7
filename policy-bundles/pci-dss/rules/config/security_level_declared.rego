# security-level-declared: every in-scope Namespace declares its security level, and its pods
# carry that level, label `pci-dss.palisade.dev/security-level`, so that functions of
# different security levels can be kept apart.
# PCI DSS 2.2.3.
package pci.config.security_level_declared

import data.lib.pci

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Namespace"
	data.lib.pci.namespace_level == ""
	msg := sprintf("namespace %s (scope %s) declares no security level: set label %s", [data.lib.pci.namespace, data.lib.pci.scope, data.lib.pci.level_label])
}

pod_level := l if {
	l := pci.labels(data.lib.pci.obj)[data.lib.pci.level_label]
	is_string(l)
} else := ""

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Pod"
	data.lib.pci.namespace_level != ""
	pod_level == ""
	msg := sprintf("pod %s does not carry its namespace's security level: label the pod (template) %s: %s", [data.lib.pci.name, data.lib.pci.level_label, data.lib.pci.namespace_level])
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.kind == "Pod"
	data.lib.pci.namespace_level != ""
	pod_level != ""
	pod_level != data.lib.pci.namespace_level
	msg := sprintf("pod %s carries security level %s but its namespace %s is %s", [data.lib.pci.name, pod_level, data.lib.pci.namespace, data.lib.pci.namespace_level])
}
