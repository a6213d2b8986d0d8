#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd and kube-controller-manager, whose
# HorizontalPodAutoscaler controller the HPA tests run) from the Go module proxy
# into a cache outside the checkout, and prints the folder that holds them.
#
# Prebuilt release downloads are unreachable on our CI machines, but both binaries build
# from source through the module proxy. The cache is keyed by version, so a fresh clone
# (or CI) reuses binaries that an earlier run built: only the first run takes minutes.
#
# Usage: hack/controlplane.sh [--with-kubectl]
#        builds what is missing and prints the assets folder; --with-kubectl also builds
#        kubectl there when the machine has none on its PATH.
# Env:   K8S_VERSION (v1.37.2), ETCD_VERSION (v3.6.16), REPLICA_POLICY_CACHE (~/.cache/replica-policy)
set -euo pipefail

TOOL=controlplane
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
ASSETS="$CACHE/k8s-$K8S_VERSION"
# Staging repositories are published as k8s.io/<repo> v0.<minor>.<patch> for v1.<minor>.<patch>.
STAGING_VERSION="v0${K8S_VERSION#v1}"
cache_lock "$ASSETS"

build_etcd() {
  if [ -x "$ASSETS/etcd" ]; then return; fi
  log "building etcd $ETCD_VERSION from the Go module proxy (first run only, about 2 minutes)..."
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init scratch/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    CGO_ENABLED=0 go build -trimpath -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
  rm -rf "$work"
  log "etcd built: $ASSETS/etcd"
}

# build_k8s <binary>: builds k8s.io/kubernetes/cmd/<binary> at K8S_VERSION into the cache.
build_k8s() {
  local bin=$1
  if [ -x "$ASSETS/$bin" ]; then return; fi
  log "building $bin $K8S_VERSION from the Go module proxy (first run only; kube-apiserver takes about 10-15 minutes on 2 cores, each further binary a few more)..."
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init "scratch/$bin" >/dev/null 2>&1
    log "  resolving k8s.io/kubernetes $K8S_VERSION and its staging repositories ($STAGING_VERSION)"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    # Every `k8s.io/<repo> => ./staging/src/k8s.io/<repo>` replace becomes the published module.
    local args=()
    while read -r mod; do
      args+=("-replace=$mod=$mod@$STAGING_VERSION")
    done < <(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
    log "  ${#args[@]} staging repositories replaced"
    go mod edit "-require=k8s.io/kubernetes@$K8S_VERSION" "${args[@]}"
    log "  downloading modules"
    go get "k8s.io/kubernetes/cmd/$bin@$K8S_VERSION" >&2
    log "  compiling (this is the long part)"
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local ld=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$ASSETS/$bin.tmp" "k8s.io/kubernetes/cmd/$bin"
  )
  mv "$ASSETS/$bin.tmp" "$ASSETS/$bin"
  rm -rf "$work"
  log "$bin built: $ASSETS/$bin"
}

build_etcd
build_k8s kube-apiserver
# Shares almost every package with kube-apiserver: a few minutes once the build cache is warm.
build_k8s kube-controller-manager
# kubectl: the machine's own when it has one, else built from the same module as kube-apiserver.
if [ "${1:-}" = "--with-kubectl" ] && ! command -v kubectl >/dev/null 2>&1; then
  build_k8s kubectl
fi
echo "$ASSETS"
