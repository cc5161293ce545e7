# Referential: reads other Ingresses from data.inventory (Gatekeeper layout).
package basic.unique_ingress_host

violation contains {"msg": msg, "details": {"host": host}} if {
	some rule in input.review.object.spec.rules
	host := rule.host
	some ns, name
	other := data.inventory.namespace[ns]["networking.k8s.io/v1"].Ingress[name]
	not same_object(ns, other)
	some other_rule in other.spec.rules
	other_rule.host == host
	msg := sprintf("host %s is already used by ingress %s/%s", [host, ns, other.metadata.name])
}

same_object(ns, other) if {
	ns == input.review.object.metadata.namespace
	other.metadata.name == input.review.object.metadata.name
}
