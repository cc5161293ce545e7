# Rego v0, Gatekeeper style: `violation` objects with msg and details.
package basic.required_labels

violation[{"msg": msg, "details": {"missing_labels": missing}}] {
	provided := {label | input.review.object.metadata.labels[label]}
	required := {label | label := input.parameters.labels[_]}
	missing := required - provided
	count(missing) > 0
	msg := sprintf("%s %s is missing required labels: %v", [input.review.kind.kind, input.review.object.metadata.name, sort(missing)])
}
