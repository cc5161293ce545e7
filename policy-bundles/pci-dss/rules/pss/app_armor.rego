# pss-app-armor: Pod Security Standards baseline check `appArmorProfile` (Kubernetes v1.37).
# PCI DSS 2.2.1, 2.2.6, 5.3.5: workloads must not disable or override the AppArmor profile.
#
# Fields: spec.securityContext.appArmorProfile.type and securityContext.appArmorProfile.type of
# every container, when appArmorProfile is set: type in `allowed_types` (RuntimeDefault,
# Localhost); pod annotations `container.apparmor.security.beta.kubernetes.io/*`: value "",
# in `allowed_annotation_values` (runtime/default) or starting with an
# `allowed_annotation_prefixes` entry (localhost/).
#
# Message: <forbidden AppArmor profile|forbidden AppArmor profiles> (<setters> must not set
#          AppArmor profile type to <values>)
#   setters: "pod", `container(s) "<names>"` (visit order) and "annotation(s)", joined by " and ";
#   values: joinQuote of the bad field types (de-duplicated, sorted) followed by the bad
#   annotations as `<key>="<value>"` (value JSON-quoted, i.e. Go %q for printable text),
#   sorted; the reason is plural when there is more than one value in total.
package pci.pss.app_armor

import data.lib.pci
import data.lib.pss

allowed_type(profile) if profile.type in input.parameters.allowed_types

bad_profile(o) if {
	pss.has(o, "appArmorProfile")
	not allowed_type(o.appArmorProfile)
}

pod_bad := true if bad_profile(data.lib.pss.pod_sc)

else := false

bad_containers := [pss.name(c) | some c in data.lib.pss.containers; bad_profile(pss.sc(c))]

type_of(o) := t if {
	t := o.appArmorProfile.type
	is_string(t)
} else := ""

bad_types := {type_of(data.lib.pss.pod_sc) | pod_bad} | {type_of(pss.sc(c)) | some c in data.lib.pss.containers; bad_profile(pss.sc(c))}

allowed_annotation("") := true

allowed_annotation(v) if v in input.parameters.allowed_annotation_values

allowed_annotation(v) if {
	is_string(v)
	some prefix in input.parameters.allowed_annotation_prefixes
	startswith(v, prefix)
}

bad_annotations := sort([sprintf("%s=%s", [k, json.marshal(v)]) |
	some k, v in pci.annotations(data.lib.pci.obj)
	startswith(k, data.lib.pss.apparmor_prefix)
	not allowed_annotation(v)
])

annotation_setter := [] if count(bad_annotations) == 0

else := [pci.pluralize("annotation", "annotations", count(bad_annotations))]

setters := concat(" and ", array.concat(pss.pod_part(pod_bad), array.concat(pss.container_part(bad_containers), annotation_setter)))

values := array.concat(sort(bad_types), bad_annotations)

violation contains {"msg": msg, "details": {"check": "appArmorProfile"}} if {
	not data.lib.pss.skip
	count(values) > 0
	reason := pci.pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", count(values))
	msg := pss.message(reason, sprintf("%s must not set AppArmor profile type to %s", [setters, pci.join_quote(values)]))
}
