# network-default-deny: every cde namespace has a default-deny NetworkPolicy, one that selects
# all pods (empty podSelector) and whose policy types are both Ingress and Egress.
# PCI DSS 1.3.1, 1.3.2, 1.4.1. Referential: reads the namespace's NetworkPolicies from the
# inventory (audit at admission, where objects arrive in any order).
package pci.network.default_deny

import data.lib.pci

network_policies := [p |
	some name
	p := data.inventory.namespace[data.lib.pci.namespace]["networking.k8s.io/v1"].NetworkPolicy[name]
]

spec_of(p) := pci.field_object(p, "spec")

# Policy types as Kubernetes infers them when policyTypes is omitted.
policy_types(p) := {t | some t in pci.field_array(spec_of(p), "policyTypes")} if count(pci.field_array(spec_of(p), "policyTypes")) > 0

else := {"Ingress"} | {"Egress" | count(pci.field_array(spec_of(p), "egress")) > 0}

selects_all(selector) if {
	count(pci.field_object(selector, "matchLabels")) == 0
	count(pci.field_array(selector, "matchExpressions")) == 0
}

default_deny(p) if {
	selects_all(pci.field_object(spec_of(p), "podSelector"))
	{"Ingress", "Egress"} - policy_types(p) == set()
}

violation contains {"msg": msg, "details": {"namespace": data.lib.pci.namespace}} if {
	not data.lib.pci.exempt
	not any_default_deny
	msg := sprintf("namespace %s (scope %s) has no default-deny NetworkPolicy: add one with podSelector {} and policyTypes [Ingress, Egress]", [data.lib.pci.namespace, data.lib.pci.scope])
}

any_default_deny if {
	some p in network_policies
	default_deny(p)
}
