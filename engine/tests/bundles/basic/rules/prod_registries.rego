package basic.prod_registries

import data.lib.k8s

violation contains {"msg": msg} if {
	some c in k8s.containers(k8s.pod_spec)
	not approved(c.image)
	msg := sprintf("container %s image %s is not from an approved registry (%s)", [c.name, c.image, concat(", ", input.parameters.registries)])
}

approved(image) if {
	some prefix in input.parameters.registries
	startswith(image, prefix)
}
