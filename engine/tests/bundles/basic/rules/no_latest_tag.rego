# Rego v1, conftest style: `deny` is a set of messages.
package basic.no_latest_tag

import data.lib.k8s

deny contains msg if {
	some c in k8s.containers(k8s.pod_spec)
	not pinned(c.image)
	msg := sprintf("container %s uses image %s: pin a version tag or digest, not latest", [c.name, c.image])
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	not endswith(last, ":latest")
}
