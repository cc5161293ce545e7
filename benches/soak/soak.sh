#!/usr/bin/env bash
# Soak test of the admission webhook: the release binary serving the built-in pci-dss
# bundle with its decision log on, under a steady, bounded load (allowed and denied Pod
# reviews), RSS sampled every 10 s. Fails when a request fails or RSS grows more than 5 %
# after the warm-up or p99 drifts (see soak.py); every 10 s sample is written to
# $SOAK_CSV (default target/soak.csv). Not part of CI (it takes DURATION); figures in RELIABILITY.md.
#
#   benches/soak/soak.sh [DURATION_SECONDS=1800] [RATE_PER_SECOND=200]
#
# Needs openssl, python3 with PyYAML (for the request bodies).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-1800}"
RATE="${2:-200}"
PORT="${PORT:-18944}"

cargo build --release -q -p palisade-cli
BIN="$PWD/target/release/palisade"
WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
python3 benches/load/bodies.py "$WORK"

"$BIN" serve --addr "127.0.0.1:$PORT" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" \
  --decision-log "$WORK/decisions.jsonl" --decision-log-max-size 20000000 --log-format json \
  2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do
  curl -skf "https://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
status=0
python3 benches/soak/soak.py "https://127.0.0.1:$PORT/validate" "$SERVER" "$WORK" \
  --rate "$RATE" --duration "$DURATION" --csv "${SOAK_CSV:-$PWD/target/soak.csv}" || status=$?
kill -TERM "$SERVER"; wait "$SERVER" || true
logs=()
for i in $(seq 10 -1 1); do
  [ -f "$WORK/decisions.jsonl.$i" ] && logs+=("$WORK/decisions.jsonl.$i")
done
echo "decision log: $("$BIN" log verify "${logs[@]}" "$WORK/decisions.jsonl" | head -1)"
exit "$status"
