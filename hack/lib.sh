# Sourced by the scripts under hack/ that build a tool from the Go module proxy into a cache
# outside the checkout (controlplane.sh, helm.sh, keda-operator.sh). Not a command of its own.
#
# Env: REPLICA_POLICY_CACHE (default ~/.cache/replica-policy, or $XDG_CACHE_HOME/replica-policy)

CACHE=${REPLICA_POLICY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/replica-policy}

# cache_lock DIR: creates DIR and holds its lock on file descriptor 9 until the script exits.
# One build at a time: `go test ./...` runs test packages in parallel and each may call the
# script on a cold cache; the others wait here and then find the tool built.
cache_lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

# log prints "[TOOL] message" on stderr (stdout is the path the script prints for its
# caller); the script sets TOOL before it sources this file.
log() { printf '[%s] %s\n' "${TOOL:-hack}" "$*" >&2; }
