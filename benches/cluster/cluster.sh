#!/usr/bin/env bash
# Palisade against a cluster holding many objects: the test cluster of
# scripts/test-cluster.sh (restarted empty), filled through the API, then
#   1. `palisade audit` of 5,000 objects: wall time and peak RSS; then with
#      --write-reports: the reports written and their bytes;
#   2. `palisade serve --cluster` with 10,000 objects in its live inventory: time to
#      ready and resident memory;
#   3. the latency kube-apiserver adds to a (dry-run) Pod create by calling the webhook:
#      the same creates without the webhook, then with it.
#
#   benches/cluster/cluster.sh [AUDIT_OBJECTS] [INVENTORY_OBJECTS] [CREATES]
#
# Needs what scripts/test-cluster.sh needs (Go), python3 with PyYAML, openssl, curl.
# Stops the test cluster when done (its data is removed).
set -euo pipefail
cd "$(dirname "$0")/../.."
AUDIT_OBJECTS="${1:-5000}"
INVENTORY_OBJECTS="${2:-10000}"
CREATES="${3:-300}"
PORT="${PORT:-18944}"

cargo build --release -q -p palisade-cli
BIN="$PWD/target/release/palisade"
WORK="$(mktemp -d)"
SERVER=""
scripts/test-cluster.sh down >/dev/null 2>&1 || true
KUBECONFIG_FILE="$(scripts/test-cluster.sh up | tail -1)"
trap 'kill "$SERVER" 2>/dev/null || true; scripts/test-cluster.sh down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
API=(python3 benches/cluster/api.py "$KUBECONFIG_FILE")

# 1. Audit.
"${API[@]}" populate "$AUDIT_OBJECTS"
"${API[@]}" run "$BIN" audit --kubeconfig "$KUBECONFIG_FILE" -o json
# The same audit writing its aggregated reports: stderr says how many and how many
# bytes they add to etcd (the peak RSS printed is the larger of the two runs).
"${API[@]}" run "$BIN" audit --kubeconfig "$KUBECONFIG_FILE" -o json --write-reports

# 2. The live inventory (Namespaces, NetworkPolicies, DaemonSets, StorageClasses).
"${API[@]}" netpols "$INVENTORY_OBJECTS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
START=$(date +%s%N)
"$BIN" serve --addr "127.0.0.1:$PORT" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
  --cluster --kubeconfig "$KUBECONFIG_FILE" --log-format json 2>"$WORK/server.log" &
SERVER=$!
until curl -skf "https://127.0.0.1:$PORT/readyz" >"$WORK/ready.txt"; do sleep 0.1; done
echo "serve --cluster: ready after $(( ($(date +%s%N) - START) / 1000000 )) ms: $(tail -1 "$WORK/ready.txt")"
awk '/^VmRSS|^VmHWM/ { printf "serve --cluster %s %.1f MB\n", $1, $2 / 1024 }' "/proc/$SERVER/status"

# 3. Added latency: the Pod of benches/fixtures/deployment.yaml, compliant, in a cde namespace.
cat >"$WORK/payments.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: payments
  labels: {pci-dss.palisade.dev/scope: cde, pci-dss.palisade.dev/security-level: high, pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gvisor}
handler: runsc
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: payments}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
YAML
"${API[@]}" apply "$WORK/payments.yaml"
"${API[@]}" latency "$CREATES" "no webhook"
"$BIN" webhook-config --name palisade-bench --url "https://127.0.0.1:$PORT/validate" --ca-bundle "$WORK/tls.crt" \
  --failure-policy Fail >"$WORK/webhook.yaml"
"${API[@]}" apply "$WORK/webhook.yaml"
sleep 2 # the API server picks up a new webhook configuration within a second or two
"${API[@]}" latency "$CREATES" "webhook (palisade serve --cluster, full pci-dss bundle)"
curl -sk "https://127.0.0.1:$PORT/metrics" | grep -E '^palisade_admission_requests_total' || true
awk '/^VmRSS|^VmHWM/ { printf "serve --cluster after the creates %s %.1f MB\n", $1, $2 / 1024 }' "/proc/$SERVER/status"
