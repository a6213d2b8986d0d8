#!/usr/bin/env bash
# Builds KEDA's operator (github.com/kedacore/keda/v2 ./cmd/operator, the controller that
# turns a ScaledObject into an HPA) from the Go module proxy into a cache outside the
# checkout, and prints the binary's path. test/keda runs it against kube-apiserver beside
# the real HPA controller.
#
# KEDA v2.21.1's go.mod says `go 1.27.4`, newer than this project's Go (1.26, with
# GOTOOLCHAIN=local). The build therefore uses the Go toolchain go1.27.3, which the go
# command fetches from the module proxy (golang.org/toolchain), and a copy of KEDA's module
# source whose go.mod has one change: its `go` directive lowered from 1.27.4 to 1.27.3 (a
# patch release adds no language feature or API; every other line, require, replace and
# go.sum, is KEDA's). The project's own go.mod is not touched. The version is stamped as
# KEDA's Makefile stamps it.
#
# The cache is keyed by version, so a fresh clone (or CI) reuses a binary an earlier run
# built: only the first run takes minutes (KEDA links every scaler's cloud SDK; see
# docs/testing.md for the measured time and disk).
#
# Usage: hack/keda-operator.sh             builds the operator if it is missing and prints its path
#        hack/keda-operator.sh --if-built  prints its path if it is built, else nothing; never builds
# Env:   KEDA_VERSION (v2.21.1), KEDA_GO_TOOLCHAIN (go1.27.3),
#        REPLICA_POLICY_CACHE (~/.cache/replica-policy)
set -euo pipefail

TOOL=keda-operator
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEDA_VERSION=${KEDA_VERSION:-v2.21.1}
KEDA_GO_TOOLCHAIN=${KEDA_GO_TOOLCHAIN:-go1.27.3}
MODULE=github.com/kedacore/keda/v2
DIR="$CACHE/keda-$KEDA_VERSION"
BIN="$DIR/keda-operator"

if [ "${1:-}" = "--if-built" ]; then
  if [ -x "$BIN" ]; then echo "$BIN"; fi
  exit 0
fi

cache_lock "$DIR"

if [ ! -x "$BIN" ]; then
  log "building KEDA's operator $KEDA_VERSION with Go $KEDA_GO_TOOLCHAIN from the Go module proxy (first run only: many minutes with cold Go caches)..."
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  # Outside any module, so that the repository's go.mod is not consulted or changed. The
  # command exits 1 (KEDA needs go 1.27.4) after it has extracted the module: its JSON
  # still names the folder, else the module cache's layout does.
  src=$(cd "$work" && GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local \
    go mod download -json "$MODULE@$KEDA_VERSION" 2>/dev/null | sed -n 's/.*"Dir": "\(.*\)",*/\1/p' || true)
  if [ -z "$src" ]; then
    src="$(go env GOMODCACHE)/$MODULE@$KEDA_VERSION"
  fi
  if [ ! -f "$src/go.mod" ] || [ ! -d "$src/cmd/operator" ]; then
    log "go mod download $MODULE@$KEDA_VERSION left no module source with cmd/operator at $src"
    exit 1
  fi
  cp -r "$src" "$work/keda"
  chmod -R u+w "$work/keda"
  (
    cd "$work/keda"
    # The one change to KEDA's source: the go directive, 1.27.4 -> the toolchain's version.
    want=${KEDA_GO_TOOLCHAIN#go}
    sed -i "s/^go [0-9.]*\$/go $want/" go.mod
    grep -q "^go $want\$" go.mod || { log "could not set the go directive in KEDA's go.mod"; exit 1; }
    log "  go.mod: $(grep '^go ' "$src/go.mod") -> go $want"
    export GOTOOLCHAIN=$KEDA_GO_TOOLCHAIN GOFLAGS=-mod=readonly CGO_ENABLED=0
    log "  downloading the modules ./cmd/operator imports and compiling it with $(go version)"
    go build -trimpath \
      -ldflags "-s -w -X=$MODULE/version.Version=${KEDA_VERSION#v}" \
      -o "$BIN.tmp" ./cmd/operator
  )
  mv "$BIN.tmp" "$BIN"
  log "KEDA's operator built: $BIN"
fi
echo "$BIN"
