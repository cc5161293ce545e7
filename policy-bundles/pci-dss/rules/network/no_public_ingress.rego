# network-no-public-ingress: NetworkPolicies of cde and connected namespaces do not admit the
# whole Internet (`public_cidrs`: 0.0.0.0/0, ::/0), every namespace (namespaceSelector: {}),
# or every source (an ingress rule without `from`).
# PCI DSS 1.3.1, 1.4.2.
package pci.network.no_public_ingress

import data.lib.pci

rules := pci.field_array(pci.field_object(data.lib.pci.obj, "spec"), "ingress")

selects_all(selector) if {
	count(pci.field_object(selector, "matchLabels")) == 0
	count(pci.field_array(selector, "matchExpressions")) == 0
}

problems contains sprintf("spec.ingress[%d] has no `from` and admits every source", [i]) if {
	some i, rule in rules
	count(pci.field_array(rule, "from")) == 0
}

problems contains sprintf("spec.ingress[%d].from[%d] admits %s", [i, j, cidr]) if {
	some i, rule in rules
	some j, peer in pci.field_array(rule, "from")
	cidr := peer.ipBlock.cidr
	cidr in input.parameters.public_cidrs
}

problems contains sprintf("spec.ingress[%d].from[%d] admits every namespace (namespaceSelector: {})", [i, j]) if {
	some i, rule in rules
	some j, peer in pci.field_array(rule, "from")
	pci.has_key(peer, "namespaceSelector")
	selects_all(peer.namespaceSelector)
}

violation contains {"msg": msg, "details": {"namespace": data.lib.pci.namespace, "scope": data.lib.pci.scope}} if {
	not data.lib.pci.exempt
	some problem in problems
	msg := sprintf("NetworkPolicy %s in %s namespace %s: %s", [data.lib.pci.name, data.lib.pci.scope, data.lib.pci.namespace, problem])
}
