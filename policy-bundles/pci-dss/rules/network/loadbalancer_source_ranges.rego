# loadbalancer-source-ranges: LoadBalancer Services restrict their clients with
# spec.loadBalancerSourceRanges (or the service.beta.kubernetes.io/load-balancer-source-ranges
# annotation), e.g. to the CDN or WAF egress ranges.
# PCI DSS 1.4.2.
package pci.network.loadbalancer_source_ranges

import data.lib.pci

annotation := "service.beta.kubernetes.io/load-balancer-source-ranges"

restricted if count(pci.field_array(data.lib.pci.obj.spec, "loadBalancerSourceRanges")) > 0

restricted if {
	value := pci.annotations(data.lib.pci.obj)[annotation]
	is_string(value)
	trim_space(value) != ""
}

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.obj.spec.type == "LoadBalancer"
	not restricted
	msg := sprintf("LoadBalancer Service %s/%s does not set spec.loadBalancerSourceRanges: restrict the networks that may reach it", [data.lib.pci.namespace, data.lib.pci.name])
}
