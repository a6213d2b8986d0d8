#!/usr/bin/env bash
# Builds helm (the CLI that installs charts/replica-policy) from the Go module proxy into a
# cache outside the checkout, and prints the binary's path.
#
# Prebuilt release downloads (get.helm.sh) are unreachable on our CI machines, but helm is a
# Go module: `go build helm.sh/helm/v4/cmd/helm` in a scratch module builds exactly the
# release's code, with the version stamped as helm's own Makefile stamps it. The cache is
# keyed by version, so a fresh clone (or CI) reuses a binary an earlier run built: only the
# first run takes minutes (8 on 2 busy cores with cold module and build caches, 16 seconds
# with warm ones).
#
# Usage: hack/helm.sh        builds helm if it is missing and prints its path
# Env:   HELM_VERSION (v4.3.2), REPLICA_POLICY_CACHE (~/.cache/replica-policy)
set -euo pipefail

TOOL=helm
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=${HELM_VERSION:-v4.3.2}
DIR="$CACHE/helm-$HELM_VERSION"
BIN="$DIR/helm"
cache_lock "$DIR"

if [ ! -x "$BIN" ]; then
  log "building helm $HELM_VERSION from the Go module proxy (first run only: up to about 8 minutes with cold Go caches)..."
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init scratch/helm >/dev/null 2>&1
    log "  downloading helm.sh/helm/v4@$HELM_VERSION and its modules"
    go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
    log "  compiling"
    # The same -X flags as helm's Makefile: `helm version` reports the release, not "v4.3".
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      -o "$BIN.tmp" helm.sh/helm/v4/cmd/helm
  )
  mv "$BIN.tmp" "$BIN"
  log "helm built: $BIN ($("$BIN" version --short))"
fi
echo "$BIN"
