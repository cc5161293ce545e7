# Shared helpers for the basic bundle's policies.
package lib.k8s

# Every container of a pod spec: regular, init and ephemeral.
containers(spec) := [c |
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some c in object.get(spec, field, [])
]

# The pod spec of the reviewed object (a Pod).
pod_spec := input.review.object.spec
