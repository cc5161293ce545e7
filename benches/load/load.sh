#!/usr/bin/env bash
# Load test of the admission webhook: the release binary serving the built-in pci-dss
# bundle over HTTPS on loopback, driven by wrk with a 50/50 mix of allowed and denied
# Pod AdmissionReviews (the Pod is the ~5 KB one of benches/fixtures/deployment.yaml).
#
#   benches/load/load.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Needs: wrk (apt-get install wrk), openssl, curl, python3. Prints requests/s and the
# latency percentiles wrk measured, the server's resident memory (current and peak),
# and verifies the decision log written meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-20}"
CONNECTIONS="${2:-16}"
PORT="${PORT:-18943}"

command -v wrk >/dev/null || { echo "load.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release -q -p palisade-cli
BIN="$PWD/target/release/palisade"
WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
python3 benches/load/bodies.py "$WORK"

"$BIN" serve --addr "127.0.0.1:$PORT" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
  --decision-log "$WORK/decisions.jsonl" --log-format json 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do
  curl -skf "https://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
curl -skf "https://127.0.0.1:$PORT/readyz"

# Both bodies answered as expected before measuring.
for kind in allowed denied; do
  curl -sk -X POST -H 'content-type: application/json' --data-binary "@$WORK/$kind.json" \
    "https://127.0.0.1:$PORT/validate" | python3 -c "import json,sys; r=json.load(sys.stdin)['response']; print('$kind ->', 'allowed' if r['allowed'] else 'denied')"
done

cd "$WORK"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$OLDPWD/benches/load/mix.lua" "https://127.0.0.1:$PORT/validate" | tee wrk.txt
cd "$OLDPWD"
# Resident memory of the server: now (after the load) and its peak (VmHWM).
awk '/^VmRSS|^VmHWM/ { printf "server %s %.1f MB\n", $1, $2 / 1024 }' "/proc/$SERVER/status"
kill -TERM "$SERVER"; wait "$SERVER" || true
# The whole chain: rotated files (decisions.jsonl.N, oldest first), then the current one.
rotated=$(cd "$WORK" && ls decisions.jsonl.* 2>/dev/null | sort -t. -k3 -rn | sed "s|^|$WORK/|" || true)
# shellcheck disable=SC2086
echo "decision log: $("$BIN" log verify $rotated "$WORK/decisions.jsonl")"
python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M))
print(f"summary: {float(rps):.0f} requests/s, p50 {pct.get('50')}, p99 {pct.get('99')}")
PY
