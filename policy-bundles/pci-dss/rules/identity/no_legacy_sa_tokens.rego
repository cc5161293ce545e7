# no-legacy-sa-tokens: no Secret of type kubernetes.io/service-account-token: such tokens never
# expire; pods get short-lived projected tokens instead (TokenRequest).
# PCI DSS 8.6.1, 8.6.3.
package pci.identity.no_legacy_sa_tokens

import data.lib.pci

violation contains {"msg": msg} if {
	not data.lib.pci.exempt
	data.lib.pci.obj.type == "kubernetes.io/service-account-token"
	sa := object.get(pci.annotations(data.lib.pci.obj), "kubernetes.io/service-account.name", "")
	msg := sprintf("Secret %s/%s is a long-lived token of ServiceAccount %s: use short-lived projected tokens (TokenRequest) instead", [data.lib.pci.namespace, data.lib.pci.name, json.marshal(sa)])
}
