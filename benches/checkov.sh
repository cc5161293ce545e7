#!/usr/bin/env bash
# palisade scan against checkov on the same 1,000-object corpus, in one run: the objects of
# benches/cluster/api.py (50 namespaces with Deployments of fixtures/deployment.yaml,
# ConfigMaps, Services, NetworkPolicies), one file each. checkov is installed once, pinned,
# into a virtualenv under target/peers/. Prints the median wall time of RUNS runs of each
# and the ratio.
#
#   benches/checkov.sh [OBJECTS] [RUNS]
#
# Needs python3 (venv, pip reaching PyPI) with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS="${1:-1000}"
RUNS="${2:-3}"
CHECKOV_VERSION=3.3.30
VENV="$PWD/target/peers/checkov-$CHECKOV_VERSION"

cargo build --release -q -p palisade-cli
if [[ ! -x $VENV/bin/checkov ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
fi
CORPUS="$(mktemp -d)"
trap 'rm -rf "$CORPUS"' EXIT
python3 - "$CORPUS" "$OBJECTS" <<'PY'
import sys
sys.path.insert(0, "benches/cluster")
import api, yaml
out, n = sys.argv[1], int(sys.argv[2])
for i, d in enumerate(api.objects(n)):
    open(f"{out}/{i:05d}-{d['kind'].lower()}.yaml", "w").write(yaml.safe_dump(d))
PY
python3 - "$CORPUS" "$RUNS" "$PWD/target/release/palisade" "$VENV/bin/checkov" <<'PY'
import statistics, subprocess, sys, time
corpus, runs, palisade, checkov = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def median(cmd):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.monotonic() - start)
    return statistics.median(times)
p = median([palisade, "scan", "-o", "json", corpus])
c = median([checkov, "-d", corpus, "--framework", "kubernetes", "-o", "json", "--quiet"])
print(f"palisade scan: {p:.2f} s; checkov {sys.argv[4].split('checkov-')[1].split('/')[0]}: {c:.2f} s; palisade is {c / p:.0f}x faster")
PY
