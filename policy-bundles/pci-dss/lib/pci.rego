# Shared helpers of the pci-dss bundle: the object under review, its namespace and
# PCI DSS scope, exemptions, label selectors, container images and command-line flags.
#
# Convention: policies call functions through the import (`pci.join_quote(x)`) but read
# rules by their full path (`data.lib.pci.exempt`): regorus 0.14.1 evaluates every rule of
# a package when one of its rules is reached through an import alias (`pci.exempt`), which
# made each evaluation about twice as slow.
package lib.pci

# Label on Namespaces: cde, connected, dmz, or absent (out of scope).
scope_label := "pci-dss.palisade.dev/scope"

# Label on Namespaces, Nodes and Pods (Req. 2.2.3).
level_label := "pci-dss.palisade.dev/security-level"

# The object under review (the Pod synthesised from a workload's template for Pod policies).
obj := o if {
	o := input.review.object
	is_object(o)
} else := {}

kind := object.get(input.review, ["kind", "kind"], "")

name := n if {
	n := obj.metadata.name
	is_string(n)
} else := ""

# Namespace of the object: its own name for a Namespace, "" for cluster-scoped objects.
namespace := obj.metadata.name if {
	kind == "Namespace"
	is_string(obj.metadata.name)
} else := ns if {
	ns := input.review.namespace
	is_string(ns)
	ns != ""
} else := ns if {
	ns := obj.metadata.namespace
	is_string(ns)
} else := ""

# Labels of the object's Namespace (of the Namespace itself when reviewing one).
namespace_labels := l if {
	kind == "Namespace"
	l := obj.metadata.labels
	is_object(l)
} else := l if {
	kind != "Namespace"
	l := input.review.namespaceObject.metadata.labels
	is_object(l)
} else := {}

# PCI DSS scope of the object's namespace ("" when out of scope or unknown).
scope := s if {
	s := namespace_labels[scope_label]
	is_string(s)
} else := ""

# Security level declared by the object's namespace ("" when not declared or unknown).
namespace_level := l if {
	l := namespace_labels[level_label]
	is_string(l)
	l != ""
} else := ""

# The policy's `exempt_namespaces` parameter (globs: `kube-*`, `*-system`, `*`).
exempt if {
	namespace != ""
	some pattern in object.get(input.parameters, "exempt_namespaces", [])
	glob_match(pattern, namespace)
}

# Gatekeeper-style glob: `*`, `prefix*`, `*suffix`, `*infix*` or an exact value.
glob_match(pattern, value) if pattern == "*"

glob_match(pattern, value) if {
	not contains(pattern, "*")
	pattern == value
}

glob_match(pattern, value) if {
	pattern != "*"
	endswith(pattern, "*")
	not startswith(pattern, "*")
	startswith(value, trim_suffix(pattern, "*"))
}

glob_match(pattern, value) if {
	pattern != "*"
	startswith(pattern, "*")
	not endswith(pattern, "*")
	endswith(value, trim_prefix(pattern, "*"))
}

glob_match(pattern, value) if {
	pattern != "*"
	startswith(pattern, "*")
	endswith(pattern, "*")
	contains(value, trim_suffix(trim_prefix(pattern, "*"), "*"))
}

# Whether any glob of the list matches.
matches_any(patterns, value) if {
	some p in patterns
	glob_match(p, value)
}

# The labels of an object ({} when absent).
labels(o) := l if {
	l := o.metadata.labels
	is_object(l)
} else := {}

# The annotations of an object ({} when absent).
annotations(o) := a if {
	a := o.metadata.annotations
	is_object(a)
} else := {}

# Kubernetes LabelSelector semantics (matchLabels and matchExpressions, all must hold).
# An empty or absent selector matches everything.
selector_matches(selector, lbls) if {
	every k, v in field_object(selector, "matchLabels") {
		lbls[k] == v
	}
	every expr in field_array(selector, "matchExpressions") {
		expression_matches(expr, lbls)
	}
}

expression_matches(expr, lbls) if {
	expr.operator == "In"
	lbls[expr.key] in field_array(expr, "values")
}

expression_matches(expr, lbls) if {
	expr.operator == "NotIn"
	not lbls[expr.key] in field_array(expr, "values")
}

expression_matches(expr, lbls) if {
	expr.operator == "Exists"
	_ = lbls[expr.key]
}

expression_matches(expr, lbls) if {
	expr.operator == "DoesNotExist"
	not has_key(lbls, expr.key)
}

has_key(o, k) if _ = o[k]

# x when it is an object (or array), else empty: guards lookups against null and wrong types.
as_object(x) := x if is_object(x)

else := {}

as_array(x) := x if is_array(x)

else := []

# The field helpers below run per container and per field, so each is one function of
# builtins: on regorus's VM a function call costs about a microsecond (it copies the
# function's description), several builtins' worth, and nesting as_object/as_array in
# them made each field access three calls (benches/README.md).

# o[k], or d when o is not an object or has no k.
get(o, k, d) := object.get(o, k, d) if is_object(o)

else := d

# o[k] as an object / array ({} / [] when o is not an object, k is absent or of another type).
field_object(o, k) := v if {
	is_object(o)
	v := o[k]
	is_object(v)
} else := {}

field_array(o, k) := v if {
	is_object(o)
	v := o[k]
	is_array(v)
} else := []

# Every container of a pod spec, in the order Kubernetes visits them:
# initContainers, containers, ephemeralContainers.
containers(spec) := array.concat(
	array.concat(field_array(spec, "initContainers"), field_array(spec, "containers")),
	field_array(spec, "ephemeralContainers"),
)

# The pod spec of the reviewed Pod ({} when absent).
pod_spec := s if {
	s := obj.spec
	is_object(s)
} else := {}

# Every container of the reviewed Pod.
pod_containers := containers(pod_spec)

# metadata.name of an object ("" when absent).
metadata_name(o) := n if {
	n := o.metadata.name
	is_string(n)
} else := ""

container_name(c) := n if {
	n := c.name
	is_string(n)
} else := ""

# Images -------------------------------------------------------------------

# The image reference without its digest (`repo:tag` or `repo`).
image_without_digest(image) := split(image, "@")[0]

# Whether the image names a tag (`:tag` after the last `/`).
has_tag(image) if {
	parts := split(image_without_digest(image), "/")
	contains(parts[count(parts) - 1], ":")
}

tag(image) := t if {
	parts := split(image_without_digest(image), "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	t := split(last, ":")[1]
}

# Whether the image ends with `@sha256:` and 64 lowercase hex digits. String builtins,
# not regex.match: regorus compiles the pattern on every call, which made this the
# costliest helper of the bundle (~80 µs per image; benches/benches/pci_dss.rs).
has_digest(image) if {
	parts := split(image, "@sha256:")
	count(parts) == 2
	count(parts[1]) == 64
	trim(parts[1], "0123456789abcdef") == ""
}

# Command-line flags -------------------------------------------------------

# Every argument of a container: command then args.
container_args(c) := array.concat(
	[s | some s in field_array(c, "command"); is_string(s)],
	[s | some s in field_array(c, "args"); is_string(s)],
)

# Value of `--name=value` or `--name value` among args (the last occurrence wins).
flag_value(args, flag) := values[count(values) - 1] if {
	values := flag_values(args, flag)
	count(values) > 0
}

flag_values(args, flag) := [v |
	some i, a in args
	flag_at(args, i, a, flag)
	v := one_flag_value(args, i, a, flag)
]

# The guard keeps one_flag_value defined wherever it is called: regorus 0.14.1's VM
# would keep an undefined function result as an element of the comprehension.
flag_at(_, _, a, flag) if startswith(a, concat("", [flag, "="]))

flag_at(args, i, a, flag) if {
	a == flag
	i + 1 < count(args)
}

one_flag_value(_, _, a, flag) := substring(a, count(flag) + 1, -1) if startswith(a, concat("", [flag, "="]))

one_flag_value(args, i, a, flag) := args[i + 1] if {
	a == flag
	i + 1 < count(args)
}

# Messages -----------------------------------------------------------------

# `"a", "b"` (Kubernetes' joinQuote).
join_quote(items) := "" if count(items) == 0

else := concat("", ["\"", concat("\", \"", items), "\""])

pluralize(singular, plural, n) := singular if n == 1

else := plural

# RBAC ---------------------------------------------------------------------

# Rules of a Role or ClusterRole, with their index.
rbac_rules := field_array(obj, "rules")

rule_verbs(rule) := {v | some v in field_array(rule, "verbs")}

rule_resources(rule) := {r | some r in field_array(rule, "resources")}

rule_groups(rule) := {g | some g in field_array(rule, "apiGroups")}

# The rule applies to the core API group ("" or "*").
core_group(rule) if "" in rule_groups(rule)

core_group(rule) if "*" in rule_groups(rule)

# `exempt_roles` (globs) names the reviewed Role/ClusterRole.
exempt_role if matches_any(object.get(input.parameters, "exempt_roles", []), name)

# `exempt_bindings` (globs) names the reviewed RoleBinding/ClusterRoleBinding.
exempt_binding if matches_any(object.get(input.parameters, "exempt_bindings", []), name)

# Subjects of the reviewed binding, as "Kind:name" ("ServiceAccount:namespace:name").
subjects := [subject_id(s) | some s in field_array(obj, "subjects")]

subject_id(s) := sprintf("ServiceAccount:%v:%v", [get(s, "namespace", namespace), get(s, "name", "")]) if s.kind == "ServiceAccount"

else := sprintf("%v:%v", [get(s, "kind", ""), get(s, "name", "")])

# "Kind Role/name" or "ClusterRole name", for messages.
display := sprintf("%s %s/%s", [kind, namespace, name]) if namespace != ""

else := sprintf("%s %s", [kind, name])
