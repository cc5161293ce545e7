# pss-selinux: Pod Security Standards baseline check `seLinuxOptions` (Kubernetes v1.31+).
# PCI DSS 2.2.1, 2.2.6, 5.3.5: workloads must not choose a custom SELinux user, role or a
# type outside `allowed_types` ("", container_t, container_init_t, container_kvm_t,
# container_engine_t).
#
# Message: seLinuxOptions (<setters> set forbidden securityContext.seLinuxOptions: <problems>)
#   setters: "pod" and/or `container(s) "<names>"` (visit order), joined by " and ", for
#   each seLinuxOptions that is set and invalid;
#   problems, joined by "; ": `type "x"`/`types "a", "b"` (bad types de-duplicated and
#   sorted), "user may not be set", "role may not be set".
package pci.pss.selinux

import data.lib.pci
import data.lib.pss

opts(o) := o.seLinuxOptions if pss.has(o, "seLinuxOptions")

type_of(opt) := t if {
	t := opt.type
	is_string(t)
} else := ""

bad_type(opt) if not type_of(opt) in input.parameters.allowed_types

user_set(opt) if {
	is_string(opt.user)
	opt.user != ""
}

role_set(opt) if {
	is_string(opt.role)
	opt.role != ""
}

invalid(opt) if bad_type(opt)

invalid(opt) if user_set(opt)

invalid(opt) if role_set(opt)

all_opts := array.concat([o | o := opts(data.lib.pss.pod_sc)], [o | some c in data.lib.pss.containers; o := opts(pss.sc(c))])

pod_bad := true if invalid(opts(data.lib.pss.pod_sc))

else := false

bad_containers := [pss.name(c) | some c in data.lib.pss.containers; invalid(opts(pss.sc(c)))]

bad_types := sort({type_of(o) | some o in all_opts; bad_type(o)})

problems := array.concat(
	[sprintf("%s %s", [pci.pluralize("type", "types", count(bad_types)), pci.join_quote(bad_types)]) | count(bad_types) > 0],
	array.concat(
		["user may not be set" | any_user_set],
		["role may not be set" | any_role_set],
	),
)

any_user_set if {
	some o in all_opts
	user_set(o)
}

any_role_set if {
	some o in all_opts
	role_set(o)
}

violation contains {"msg": msg, "details": {"check": "seLinuxOptions"}} if {
	not data.lib.pss.skip
	detail_setters := pss.setters(pod_bad, bad_containers)
	detail_setters != ""
	msg := pss.message("seLinuxOptions", sprintf("%s set forbidden securityContext.seLinuxOptions: %s", [detail_setters, concat("; ", problems)]))
}
