# Helpers of the Pod Security Standards policies (pss-*), which reproduce the checks of
# Kubernetes v1.37 pod-security-admission (policy "latest") one policy per check.
#
# Message of every check: `<ForbiddenReason> (<ForbiddenDetail>)`, upstream's wording.
# Containers are visited as upstream visits them: initContainers, containers,
# ephemeralContainers. Lists built from upstream sets are de-duplicated and sorted
# (byte order); lists built from upstream slices keep visit order and duplicates.
# Rules are read by full path (`data.lib.pss.skip`), functions through the import (see
# lib/pci.rego).
package lib.pss

import data.lib.pci

spec := data.lib.pci.pod_spec

containers := data.lib.pci.pod_containers

name(c) := pci.container_name(c)

# The pod-level and a container's securityContext ({} when absent or null).
pod_sc := pci.field_object(spec, "securityContext")

sc(c) := pci.field_object(c, "securityContext")

# Field k of o is set (present and not null), as a non-nil Go pointer.
has(o, k) if o[k] != null

message(reason, detail) := sprintf("%s (%s)", [reason, detail])

# `container "a"` / `containers "a", "b"`.
containers_phrase(names) := sprintf("%s %s", [pci.pluralize("container", "containers", count(names)), pci.join_quote(names)])

# Upstream's "bad setters": `pod` and/or `container(s) "a", ...`, joined by " and ".
setters(pod_bad, names) := concat(" and ", array.concat(pod_part(pod_bad), container_part(names)))

pod_part(bad) := ["pod"] if bad

else := []

container_part(names) := [] if count(names) == 0

else := [containers_phrase(names)]

# Windows pods (exempt from three restricted checks since policy 1.25).
windows if spec.os.name == "windows"

# spec.hostUsers explicitly false: a user-namespaced pod (relaxes three checks since 1.35).
host_users_false if spec.hostUsers == false

# Namespaces where the restricted profile applies: the `namespace_selector` of the
# restricted pss-* policies in bundle.toml. There the baseline checks that upstream's
# restricted profile overrides (hostPathVolumes, capabilities_baseline,
# seccompProfile_baseline, procMount) give way to their restricted counterparts.
restricted_scopes := {"cde", "connected"}

restricted_namespace if data.lib.pci.scope in restricted_scopes

# Whether the check is skipped for this request.
skip if data.lib.pci.exempt

skip if unchanged_update

# An UPDATE that changes neither the pod spec nor the AppArmor annotations cannot
# introduce a violation (upstream likewise skips pod updates that change nothing it
# checks), so updates of labels or annotations of existing pods stay possible.
unchanged_update if {
	input.review.operation == "UPDATE"
	old := input.review.oldObject
	is_object(old)
	object.get(old, "spec", null) == object.get(data.lib.pci.obj, "spec", null)
	apparmor_annotations(old) == apparmor_annotations(data.lib.pci.obj)
}

apparmor_prefix := "container.apparmor.security.beta.kubernetes.io/"

apparmor_annotations(o) := {k: v | some k, v in pci.annotations(o); startswith(k, apparmor_prefix)}

# procMount (shared by pss-proc-mount and pss-proc-mount-restricted) ---------

proc_mount_bad(c) if {
	proc_mount_set(c)
	not sc(c).procMount in input.parameters.allowed_proc_mount_types
}

proc_mount_set(c) if has(sc(c), "procMount")

proc_mount_containers := [name(c) | some c in containers; proc_mount_bad(c)]

proc_mount_values := sort({sprintf("%v", [sc(c).procMount]) | some c in containers; proc_mount_bad(c)})

proc_mount_message := message("procMount", sprintf("%s must not set securityContext.procMount to %s", [
	containers_phrase(proc_mount_containers),
	pci.join_quote(proc_mount_values),
])) if count(proc_mount_containers) > 0

# seccompProfile (shared by pss-seccomp-baseline and pss-seccomp-restricted) -

seccomp_type(o) := t if {
	t := o.seccompProfile.type
	is_string(t)
} else := ""

seccomp_valid(o) if seccomp_type(o) in input.parameters.allowed_types

# o sets a seccomp profile of a type that is not allowed.
seccomp_bad(o) if {
	has(o, "seccompProfile")
	not seccomp_valid(o)
}

seccomp_pod_bad := true if seccomp_bad(pod_sc)

else := false

seccomp_bad_containers := [name(c) | some c in containers; seccomp_bad(sc(c))]

seccomp_bad_types := sort({seccomp_type(pod_sc) | seccomp_pod_bad} | {seccomp_type(sc(c)) | some c in containers; seccomp_bad(sc(c))})

seccomp_explicit_message := message("seccompProfile", sprintf("%s must not set securityContext.seccompProfile.type to %s", [
	setters(seccomp_pod_bad, seccomp_bad_containers),
	pci.join_quote(seccomp_bad_types),
])) if count(seccomp_bad_types) > 0
