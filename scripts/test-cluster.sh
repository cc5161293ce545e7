#!/usr/bin/env bash
# Real etcd + kube-apiserver on loopback for Palisade's end-to-end tests.
#
# This script owns:
#   scripts/test-cluster/{etcd,kube-apiserver}/  wrapper Go modules pinning the versions
#   target/test-cluster/bin/    binaries, built once per version (etcd-vX, kube-apiserver-vX)
#   target/test-cluster/go/     Go module cache (unless GOMODCACHE is set) and, during a build,
#                               Go's build cache (unless GOCACHE is set)
#   target/test-cluster/run/    state of the running cluster: pids, etcd data, certs, logs,
#                               admin kubeconfig and cluster.env (API_PORT, ETCD_PORT, TOKEN)
#
#   up    build if needed, start etcd + kube-apiserver on free 127.0.0.1 ports, wait for
#         /readyz, install $ROOT/deploy/crds/*.yaml (if any) and wait until Established,
#         then print the admin kubeconfig path as the LAST line of stdout.
#         If a cluster from the same state dir is already running and ready, it is reused
#         (CRDs are re-applied); a stale or half-running one is stopped and started afresh.
#   down  stop both processes (pid files) and remove the state (data, certs, logs, kubeconfig).
#
# Environment: PALISADE_TEST_CLUSTER_DIR (state dir, default target/test-cluster/run),
# PALISADE_TEST_CLUSTER_CACHE (bin/ and go/, default target/test-cluster),
# PALISADE_TEST_CLUSTER_TIMEOUT (seconds to wait for readiness, default 120),
# PALISADE_TEST_CLUSTER_CRD_DIR (default deploy/crds), PALISADE_TEST_CLUSTER_GO_JOBS (go build -p).
# No kubelet, controller-manager or scheduler: pods stay Pending, the `default`
# ServiceAccount is never created (so the ServiceAccount admission plugin is off) and
# deleted namespaces stay Terminating (no namespace controller).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULES="$ROOT/scripts/test-cluster"
CACHE="${PALISADE_TEST_CLUSTER_CACHE:-$ROOT/target/test-cluster}"
BIN_DIR="$CACHE/bin"
RUN="${PALISADE_TEST_CLUSTER_DIR:-$ROOT/target/test-cluster/run}"
TIMEOUT="${PALISADE_TEST_CLUSTER_TIMEOUT:-120}"
CRD_DIR="${PALISADE_TEST_CLUSTER_CRD_DIR:-$ROOT/deploy/crds}"
SERVICE_CIDR=10.0.0.0/24 # its first address, 10.0.0.1, is the kubernetes service IP

log() { echo "test-cluster: $*" >&2; }
die() { echo "test-cluster: error: $*" >&2; exit 1; }
usage() {
  cat >&2 <<EOF
usage: scripts/test-cluster.sh up|down
  up    build (once) and start a real etcd + kube-apiserver on 127.0.0.1; prints the admin
        kubeconfig path as the last line of stdout (reuses a running, ready cluster)
  down  stop them and remove their state under ${RUN}
EOF
  exit 2
}

# The version of module $2 required by wrapper go.mod $1 (the cache key).
mod_version() { awk -v m="$2" '{for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v[0-9]/) { print $(i+1); exit }}' "$1"; }

# build NAME MODULE [LDFLAGS]: build the `tool` package of scripts/test-cluster/NAME once
# into $BIN_DIR/NAME-<version of MODULE>; sets BUILT to that path.
build() {
  local name=$1 dir="$MODULES/$1" ver pkg
  ver=$(mod_version "$dir/go.mod" "$2"); pkg=$(awk '$1 == "tool" { print $2; exit }' "$dir/go.mod")
  [[ -n $ver && -n $pkg ]] || die "cannot read the $2 version or tool package from $dir/go.mod"
  BUILT="$BIN_DIR/$name-$ver"
  [[ -x $BUILT ]] && return
  command -v go >/dev/null || die "go not found: the test cluster builds etcd and kube-apiserver from the Go module proxy (needs Go >= 1.26)"
  mkdir -p "$BIN_DIR"
  log "building $name $ver from $pkg (once; this takes several minutes)..."
  local start=$SECONDS jobs=() tmp="$BUILT.tmp.$$"
  [[ -n ${PALISADE_TEST_CLUSTER_GO_JOBS:-} ]] && jobs=(-p "$PALISADE_TEST_CLUSTER_GO_JOBS")
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -modcacherw" \
    GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}" GOCACHE="${GOCACHE:-$CACHE/go/build}" \
    nice -n 19 go build "${jobs[@]}" -mod=readonly -trimpath -ldflags "-s -w ${3:-}" -o "$tmp" "$pkg") \
    || { rm -f "$tmp"; die "go build of $name $ver failed (see above)"; }
  mv "$tmp" "$BUILT"
  log "built $BUILT in $((SECONDS - start))s"
  [[ -n ${GOCACHE:-} ]] || rm -rf "$CACHE/go/build" # ~3 GB; the versioned binary is the cache
}
alive() { [[ -r /proc/$1/stat && $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) != Z* ]]; } # not gone, not a zombie

# proc_is PIDFILE PREFIX: the pid in PIDFILE is alive and its argv[0] starts with PREFIX.
proc_is() {
  local pid; pid=$(cat "$1" 2>/dev/null) && alive "$pid" || return 1
  [[ $(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1) == "$2"* ]]
}

stop() { # stop NAME: TERM then KILL the process of $RUN/NAME.pid if it is ours
  local f="$RUN/$1.pid" pid
  if proc_is "$f" "$BIN_DIR/$1-"; then
    pid=$(cat "$f"); log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

down() {
  stop kube-apiserver; stop etcd
  # Remove only what `up` creates: $RUN may be a user-chosen directory.
  rm -rf "$RUN/etcd-data" "$RUN/pki" "$RUN/crds" "$RUN"/*.log "$RUN/kubeconfig" "$RUN/cluster.env"
  rmdir "$RUN" 2>/dev/null || true
}

# A free loopback port below Linux's ephemeral range (32768+), distinct from "$@".
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    [[ " $* " == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found on 127.0.0.1"
}

api() { # api METHOD PATH [curl args...]: prints the body, then the HTTP code on its own line
  local m=$1 p=$2; shift 2
  # -A: the API server pretty-prints JSON for a curl user agent; parsing below wants compact JSON
  curl -sS --max-time 10 -A palisade-test-cluster --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $TOKEN" \
    -X "$m" -w '\n%{http_code}' "$@" "https://127.0.0.1:$API_PORT$p"
}
ready() { [[ $(api GET /readyz 2>/dev/null | head -n1) == ok ]]; }

fail_start() { # print the logs' tails, stop both, keep $RUN for inspection (the next up/down cleans it)
  local f
  for f in kube-apiserver etcd; do
    echo "----- last 40 lines of $RUN/$f.log -----" >&2; tail -n 40 "$RUN/$f.log" >&2 2>/dev/null || true
  done
  stop kube-apiserver; stop etcd
  die "$1 (logs: $RUN/*.log)"
}

gen_pki() {
  local d="$RUN/pki"; mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=palisade-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  cat >"$d/serving.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$d/serving.key" -out "$d/serving.csr" 2>/dev/null
  openssl x509 -req -in "$d/serving.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$d/serving.ext" -out "$d/serving.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  TOKEN=$(openssl rand -hex 24)
  echo "$TOKEN,palisade-admin,palisade-admin,system:masters" >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/tokens.csv"
}

write_kubeconfig() {
  cat >"$RUN/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: palisade-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$RUN/pki/ca.crt")
users:
- name: palisade-admin
  user:
    token: $TOKEN
contexts:
- name: palisade-test
  context: {cluster: palisade-test, user: palisade-admin, namespace: default}
current-context: palisade-test
EOF
  chmod 600 "$RUN/kubeconfig.tmp"; mv "$RUN/kubeconfig.tmp" "$RUN/kubeconfig"
}

start() { # start NAME BINARY ARGS...: detached, stdio to $RUN/NAME.log, pid to $RUN/NAME.pid
  local name=$1; shift
  setsid "$@" </dev/null >"$RUN/$name.log" 2>&1 9>&- & # 9>&-: don't inherit the lock
  echo $! >"$RUN/$name.pid"
}

install_crds() {
  compgen -G "$CRD_DIR/*.yaml" >/dev/null || { log "no CRDs in $CRD_DIR; skipping"; return 0; }
  rm -rf "$RUN/crds"; mkdir -p "$RUN/crds"
  # Split multi-document files: the API server takes one object per application/yaml request.
  awk -v out="$RUN/crds" 'FNR == 1 || /^---/ { n++; if (/^---/) next } { print > (out "/" n ".yaml") }' "$CRD_DIR"/*.yaml
  local names=() f resp code name
  for f in "$RUN"/crds/*.yaml; do
    grep -qvE '^[[:space:]]*(#.*)?$' "$f" || continue # empty document
    resp=$(api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions -H 'Content-Type: application/yaml' --data-binary @"$f")
    code=${resp##*$'\n'}; resp=${resp%$'\n'*}
    if [[ $code == 409 ]]; then # exists (reused cluster): server-side apply the file over it
      name=$(sed -n 's/.*"details":{"name":"\([^"]*\)".*/\1/p' <<<"$resp")
      resp=$(api PATCH "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name?fieldManager=palisade-test-cluster&force=true" \
        -H 'Content-Type: application/apply-patch+yaml' --data-binary @"$f")
      code=${resp##*$'\n'}; resp=${resp%$'\n'*}
    fi
    [[ $code == 20? ]] || die "installing a CRD from $CRD_DIR failed (HTTP $code): $resp"
    name=$(sed -n 's/^{"kind":"CustomResourceDefinition","apiVersion":"[^"]*","metadata":{"name":"\([^"]*\)".*/\1/p' <<<"$resp")
    [[ -n $name ]] || die "unexpected response installing a CRD from $CRD_DIR: $resp"
    names+=("$name")
  done
  for name in "${names[@]}"; do
    until [[ $(api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name") == *'"type":"Established","status":"True"'* ]]; do
      ((SECONDS < DEADLINE)) || die "CRD $name did not become Established within ${TIMEOUT}s"
      sleep 0.5
    done
    log "CRD $name established"
  done
}

up() {
  command -v openssl >/dev/null || die "openssl not found: needed to generate the test cluster's certificates"
  command -v curl >/dev/null || die "curl not found: needed to check the test cluster's readiness"
  build etcd go.etcd.io/etcd/server/v3; local etcd=$BUILT
  local kv vpkg ld=""; kv=$(mod_version "$MODULES/kube-apiserver/go.mod" k8s.io/kubernetes)
  local kminor=${kv#v1.}; kminor=${kminor%%.*}
  for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $vpkg.gitVersion=$kv -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$kminor -X $vpkg.gitTreeState=clean"
  done
  build kube-apiserver k8s.io/kubernetes "$ld"; local apiserver=$BUILT
  DEADLINE=$((SECONDS + TIMEOUT))

  if proc_is "$RUN/etcd.pid" "$etcd" && proc_is "$RUN/kube-apiserver.pid" "$apiserver" && [[ -r $RUN/cluster.env ]]; then
    # shellcheck source=/dev/null
    source "$RUN/cluster.env"
    if ready; then
      log "reusing the running cluster at https://127.0.0.1:$API_PORT"
      install_crds; echo "$RUN/kubeconfig"; return
    fi
  fi
  down # stale or partial state: start afresh
  mkdir -p "$RUN"
  local etcd_port peer_port
  etcd_port=$(free_port); peer_port=$(free_port "$etcd_port"); API_PORT=$(free_port "$etcd_port" "$peer_port")
  gen_pki
  printf 'API_PORT=%s\nETCD_PORT=%s\nTOKEN=%s\n' "$API_PORT" "$etcd_port" "$TOKEN" >"$RUN/cluster.env"
  write_kubeconfig

  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "$etcd" --name=palisade-test --data-dir="$RUN/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="palisade-test=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn
  log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
  start kube-apiserver "$apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$API_PORT" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$RUN/pki/serving.crt" --tls-private-key-file="$RUN/pki/serving.key" \
    --client-ca-file="$RUN/pki/ca.crt" --token-auth-file="$RUN/pki/tokens.csv" \
    --authorization-mode=RBAC --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --disable-admission-plugins=ServiceAccount --allow-privileged=true \
    --endpoint-reconciler-type=none --profiling=false

  until ready; do
    proc_is "$RUN/etcd.pid" "$etcd" || fail_start "etcd exited during startup"
    proc_is "$RUN/kube-apiserver.pid" "$apiserver" || fail_start "kube-apiserver exited during startup"
    ((SECONDS < DEADLINE)) || fail_start "kube-apiserver not ready (/readyz) within ${TIMEOUT}s"
    sleep 0.5
  done
  log "kube-apiserver ready at https://127.0.0.1:$API_PORT"
  install_crds
  echo "$RUN/kubeconfig"
}

main() {
  [[ ${1:-} == up || ${1:-} == down ]] || usage
  command -v flock >/dev/null || die "flock not found (util-linux): needed to serialise up/down"
  mkdir -p "$CACHE"; exec 9>"$CACHE/.lock"; flock 9 # one up/down at a time
  if [[ $1 == up ]]; then up; else down; fi
}
main "$@"; exit # on one line, so that editing this file while it runs is harmless
