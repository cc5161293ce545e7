# conftest `warn`: findings are warnings whatever the policy's action.
package basic.resource_limits

import data.lib.k8s

warn contains msg if {
	some c in k8s.containers(k8s.pod_spec)
	not c.resources.limits.memory
	msg := sprintf("container %s has no memory limit", [c.name])
}
