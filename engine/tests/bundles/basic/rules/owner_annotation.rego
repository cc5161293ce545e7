package basic.owner_annotation

deny contains msg if {
	not input.review.object.metadata.annotations.owner
	msg := sprintf("service %s has no owner annotation", [input.review.object.metadata.name])
}
