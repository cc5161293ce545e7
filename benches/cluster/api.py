"""The cluster benchmark's client of the test cluster's API server (benches/cluster/cluster.sh).

  api.py KUBECONFIG populate N          create N objects through the API (50 namespaces)
  api.py KUBECONFIG netpols N           add NetworkPolicies until the inventory holds N objects
  api.py KUBECONFIG latency N PHASE     time N dry-run Pod creates; PHASE names the output line
  api.py KUBECONFIG apply FILE          create or replace the objects of a YAML file
  api.py KUBECONFIG run CMD...          run CMD; print its wall time and peak RSS

Reads the token and CA of the kubeconfig `scripts/test-cluster.sh up` writes. Needs PyYAML.
"""
import base64, concurrent.futures, http.client, json, os, re, resource, ssl, statistics, subprocess, sys, tempfile, threading, time
import pathlib

import yaml  # type: ignore

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMESPACES = 50


class Api:
    def __init__(self, kubeconfig):
        kc = yaml.safe_load(open(kubeconfig))
        cluster, user = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
        m = re.match(r"https://([^:/]+):(\d+)", cluster["server"])
        self.host, self.port = m.group(1), int(m.group(2))
        ca = tempfile.NamedTemporaryFile(delete=False, suffix=".crt")
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        ca.close()
        self.ctx = ssl.create_default_context(cafile=ca.name)
        self.token = user["token"]
        self.local = threading.local()

    def request(self, method, path, body=None, content_type="application/json"):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"}
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            res = conn.getresponse()
            return res.status, res.read()
        except (http.client.HTTPException, OSError):
            self.local.conn = None
            raise

    def create(self, obj, dry_run=False):
        path = collection(obj) + ("?dryRun=All" if dry_run else "")
        status, body = self.request("POST", path, obj)
        if status == 409 and not dry_run:  # exists (a rerun): replace it
            status, body = self.request("PATCH", f"{collection(obj)}/{obj['metadata']['name']}?fieldManager=bench&force=true",
                                        obj, "application/apply-patch+yaml")
        return status, body


PLURALS = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Service": "services", "Pod": "pods",
           "Deployment": "deployments", "NetworkPolicy": "networkpolicies", "RuntimeClass": "runtimeclasses",
           "ValidatingWebhookConfiguration": "validatingwebhookconfigurations"}


def collection(obj):
    group_version = obj["apiVersion"]
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    ns = obj["metadata"].get("namespace")
    plural = PLURALS[obj["kind"]]
    return f"{base}/namespaces/{ns}/{plural}" if ns and obj["kind"] != "Namespace" else f"{base}/{plural}"


def fixture_deployment():
    return yaml.safe_load((ROOT / "benches/fixtures/deployment.yaml").read_text())


def objects(n):
    """N objects over 50 namespaces (every other one cde): Deployments, ConfigMaps, Services, NetworkPolicies."""
    deployment = fixture_deployment()
    yield from ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{i}", "labels": {
        "pci-dss.palisade.dev/scope": "cde" if i % 2 == 0 else "connected",
        "pci-dss.palisade.dev/security-level": "high"}}} for i in range(NAMESPACES))
    for i in range(n - NAMESPACES):
        ns, kind = f"bench-{i % NAMESPACES}", ("Deployment", "ConfigMap", "Service", "Deployment", "NetworkPolicy")[i % 5]
        meta = {"name": f"{kind.lower()}-{i}", "namespace": ns, "labels": {"app.kubernetes.io/name": f"app-{i}"}}
        if kind == "Deployment":
            d = json.loads(json.dumps(deployment))
            d["metadata"].update(name=meta["name"], namespace=ns)
            yield d
        elif kind == "ConfigMap":
            yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"LOG_LEVEL": "info", "REGION": "eu-west-1"}}
        elif kind == "Service":
            yield {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                   "spec": {"clusterIP": "None", "selector": meta["labels"], "ports": [{"port": 8443, "targetPort": 8443}]}}
        else:
            yield netpol(ns, meta["name"])


def netpol(ns, name):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}, "policyTypes": ["Ingress"]}}


def create_all(api, objs):
    objs = list(objs)
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    for o in namespaces:
        check(api.create(o), o)
    rest = [o for o in objs if o["kind"] != "Namespace"]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for o, r in zip(rest, pool.map(api.create, rest)):
            check(r, o)
    print(f"created {len(objs)} objects in {time.monotonic() - start:.1f} s", file=sys.stderr)


def check(result, obj):
    status, body = result
    if status >= 300:
        raise SystemExit(f"creating {obj['kind']} {obj['metadata']['name']}: HTTP {status}: {body[:300]!r}")


def latency(api, n, phase):
    d = fixture_deployment()
    template = d["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"],
           "metadata": dict(template["metadata"], name="latency-probe", namespace="payments")}
    times = []
    for _ in range(n):
        start = time.perf_counter()
        status, body = api.create(pod, dry_run=True)
        times.append((time.perf_counter() - start) * 1000)
        if status >= 300:
            raise SystemExit(f"latency probe: HTTP {status}: {body[:300]!r}")
    times.sort()
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(f"{phase}: {n} dry-run Pod creates, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def run(cmd):
    start = time.monotonic()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    wall = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{os.path.basename(cmd[0])} {cmd[1]}: exit {code}, wall {wall:.2f} s, peak RSS {peak:.1f} MB")


def main():
    api, what, args = Api(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if what == "populate":
        create_all(api, objects(int(args[0])))
    elif what == "netpols":
        status, body = api.request("GET", "/apis/networking.k8s.io/v1/networkpolicies?limit=1")
        have = json.loads(body)["metadata"].get("remainingItemCount", 0) + 1
        extra = int(args[0]) - NAMESPACES - have
        create_all(api, (netpol(f"bench-{i % NAMESPACES}", f"inventory-{i}") for i in range(max(extra, 0))))
    elif what == "latency":
        latency(api, int(args[0]), args[1])
    elif what == "apply":
        for doc in yaml.safe_load_all(open(args[0])):
            if doc:
                check(api.create(doc), doc)
    elif what == "run":
        run(args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
