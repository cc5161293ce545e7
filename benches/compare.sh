#!/usr/bin/env bash
# Side by side, in one run: the pci-dss bundle's Rego policies on the typical Pod
# (benches/fixtures/deployment.yaml's template) evaluated by OPA (`opa bench`, built
# from the Go module proxy) and by palisade (criterion, regorus VM), and whole-command
# figures with hyperfine. Prints medians and ratios.
#
#   benches/compare.sh
#
# Needs: go (1.26+), python3 with yaml, hyperfine (apt-get install hyperfine).
# OPA is built once into target/peers/ (cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."
OPA_VERSION=v1.22.4
PEERS="$PWD/target/peers"
OPA="$PEERS/opa-$OPA_VERSION"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ ! -x $OPA ]]; then
  echo "compare: building opa $OPA_VERSION from the Go module proxy (once)..." >&2
  mkdir -p "$PEERS"
  GOBIN="$WORK/bin" GOFLAGS=-modcacherw GOMODCACHE="$PEERS/go/mod" GOCACHE="$PEERS/go/build" \
    go install "github.com/open-policy-agent/opa@$OPA_VERSION"
  mv "$WORK/bin/opa" "$OPA"
  rm -rf "$PEERS/go/build"
fi

n=$(python3 benches/compare/opa_inputs.py policy-bundles/pci-dss benches/fixtures/deployment.yaml "$WORK")
B=policy-bundles/pci-dss
mods=(-d "$B/lib")
while read -r m; do mods+=(-d "$m"); done <"$WORK/modules.txt"
echo "== the same $n Rego policies on one Pod (every Pod policy that needs no inventory)"
opa_found=$("$OPA" eval -f json "${mods[@]}" -d "$WORK/wrapper.rego" -i "$WORK/input.json" \
  'count(data.palisade_compare.results)' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"][0]["expressions"][0]["value"])')
echo "opa finds $opa_found violations"
"$OPA" bench -f json --count 5 "${mods[@]}" -d "$WORK/wrapper.rego" -i "$WORK/input.json" \
  'data.palisade_compare.results' >"$WORK/opa.json"
opa_ns=$(python3 - "$WORK/opa.json" <<'PY'
import json, statistics, sys
text = open(sys.argv[1]).read()
dec = json.JSONDecoder(); i = 0; runs = []
while i < len(text):
    text_i = text[i:].lstrip()
    if not text_i: break
    obj, n = dec.raw_decode(text_i); i = len(text) - len(text_i) + n
    runs.append(obj)
print(int(statistics.median(r["T"] / r["N"] for r in runs)))
PY
)
cargo bench -q -p palisade-benches --bench pci_dss -- --noplot 'pci_dss/opa_peer_set_pod$' 2>&1 | tee "$WORK/palisade.txt" | grep -E "opa peer set|time:" >&2
pal_ns=$(python3 - "$WORK/palisade.txt" <<'PY'
import re, sys
m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", open(sys.argv[1]).read())
value, unit = float(m.group(1)), m.group(2)
print(int(value * {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]))
PY
)
python3 -c "import sys; o,p=int(sys.argv[1]),int(sys.argv[2]); print(f'opa {o/1000:.0f} µs/op, palisade {p/1000:.0f} µs/op (median): palisade is {o/p:.1f}x faster' if p<o else f'opa {o/1000:.0f} µs/op, palisade {p/1000:.0f} µs/op (median): palisade is {p/o:.1f}x slower')" "$opa_ns" "$pal_ns"

echo "== whole commands (hyperfine, median of runs)"
cargo build -q --release -p palisade-cli
BIN="$PWD/target/release/palisade"
"$BIN" scan examples/compliant >/dev/null # fills the compile cache
hyperfine -N --warmup 2 --runs 20 --export-json "$WORK/cmd.json" \
  "$BIN scan examples/compliant/10-payments-api.yaml" \
  "$OPA eval ${mods[*]} -d $WORK/wrapper.rego -i $WORK/input.json data.palisade_compare.results" >/dev/null
python3 - "$WORK/cmd.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['median']*1000:8.1f} ms  {r['command'].split('/')[-1][:90]}")
PY
