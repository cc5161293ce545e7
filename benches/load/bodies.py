"""Writes allowed.json and denied.json: AdmissionReviews of the benchmark Pod."""
import json, sys, copy, pathlib

try:
    import yaml  # type: ignore
except ImportError:  # the fixture is also valid for this tiny loader
    yaml = None

root = pathlib.Path(__file__).resolve().parents[2]
out = pathlib.Path(sys.argv[1])
text = (root / "benches/fixtures/deployment.yaml").read_text()
if yaml is None:
    raise SystemExit("bodies.py needs PyYAML: pip install pyyaml")
deployment = yaml.safe_load(text)
template = deployment["spec"]["template"]
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": dict(template["metadata"], name="payments-api-7d9f", namespace="payments"),
       "spec": template["spec"]}
denied = copy.deepcopy(pod)
denied["metadata"]["name"] = "debug-shell"
denied["spec"]["containers"][0]["securityContext"] = {"privileged": True}
denied["spec"]["hostPID"] = True

def review(uid, obj):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": obj["metadata"]["name"], "namespace": "payments", "operation": "CREATE",
        "userInfo": {"username": "oidc:alice@example.com", "groups": ["system:authenticated"]},
        "object": obj, "oldObject": None, "dryRun": False}}

for name, obj in [("allowed", pod), ("denied", denied)]:
    body = json.dumps(review(f"load-{name}", obj))
    (out / f"{name}.json").write_text(body)
    print(f"{name}.json: {len(body)} bytes")
