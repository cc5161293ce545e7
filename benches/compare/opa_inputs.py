#!/usr/bin/env python3
"""Writes what `opa bench` needs to evaluate the pci-dss bundle's Rego policies the way
palisade does on one Pod: input.json (the review palisade builds: kind, operation,
object, namespaceObject) and wrapper.rego, whose `results` evaluates every Rego policy
that matches a Pod and runs with the bundle's parameters (not switched off by an empty
`enabled_by`), with that policy's parameters bound by `with` (palisade binds them as
input.parameters per policy too); and modules.txt, the policies' modules.

usage: opa_inputs.py BUNDLE_DIR OBJECT.yaml OUT_DIR
"""
import json
import sys
import tomllib

import yaml  # python3-yaml

bundle_dir, object_file, out = sys.argv[1:4]
manifest = tomllib.load(open(f"{bundle_dir}/bundle.toml", "rb"))
deployment = yaml.safe_load(open(object_file))
template = deployment["spec"]["template"]
pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": dict(template["metadata"], name=deployment["metadata"]["name"],
                     namespace=deployment["metadata"]["namespace"]),
    "spec": template["spec"],
}
namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": pod["metadata"]["namespace"], "labels": {
    "pci-dss.palisade.dev/scope": "cde", "pci-dss.palisade.dev/security-level": "high"}}}
review = {
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "operation": "CREATE",
    "name": pod["metadata"]["name"],
    "namespace": pod["metadata"]["namespace"],
    "object": pod,
    "namespaceObject": namespace,
}
json.dump({"review": review}, open(f"{out}/input.json", "w"))
json.dump(pod, open(f"{out}/pod.json", "w"))
json.dump(namespace, open(f"{out}/namespace.json", "w"))


def matches_pod(policy):
    kinds = policy.get("match", {}).get("kinds", [])
    return not kinds or any(k in ("Pod", "core/Pod", "*") for k in kinds)


def switched_off(policy):
    """`enabled_by` names a parameter that is empty: palisade does not run the policy."""
    key = policy.get("enabled_by")
    return key is not None and policy.get("parameters", {}).get(key) in (None, False, "", [], {})


lines = ["package palisade_compare", ""]
count = 0
modules = []
for p in manifest["policy"]:
    if "rego" not in p or not matches_pod(p) or switched_off(p):
        continue
    src = open(f"{bundle_dir}/{p['rego']}").read()
    if p.get("referential") or "data.inventory" in src:
        continue  # needs an inventory: left out on both sides
    package = next(l.split()[1] for l in src.splitlines() if l.startswith("package "))
    params = json.dumps(p.get("parameters", {}))
    lines += [
        "results contains [%s, v] if {" % json.dumps(p["id"]),
        f"\tvs := data.{package}.violation with input.parameters as {params}",
        "\tsome v in vs",
        "}",
        "",
    ]
    count += 1
    modules.append(f"{bundle_dir}/{p['rego']}")
open(f"{out}/wrapper.rego", "w").write("\n".join(lines))
# Only these modules are given to OPA: a switched-off policy may call palisade's
# extensions (image-signature), which OPA's type checker rejects.
open(f"{out}/modules.txt", "w").write("\n".join(modules) + "\n")
print(count)
