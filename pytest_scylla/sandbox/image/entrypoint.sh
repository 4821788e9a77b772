#!/bin/bash
# Entry point of scylla-runner containers.
#
#   scylla-entrypoint idle [LEASE_STALE_S]  the container's PID 1 (scylla-init): idles,
#                                           reaps, ends the container when the owner's
#                                           lease goes stale; every run is a `docker exec`.
#   scylla-entrypoint exec NAMES -- ARGV    run ARGV with exactly the variables named in
#                                           NAMES (comma-separated) and nothing else: the
#                                           image's and docker's own (HOSTNAME, PATH...)
#                                           must not leak into the run's environment. When
#                                           ARGV exits, whatever it left running is killed.
#   scylla-entrypoint ARGV...               run ARGV as is (docker run image cmd...).
set -euo pipefail

case "${1:-idle}" in
idle)
    shift || true
    exec /usr/bin/python3 -I /usr/local/bin/scylla-init "$@"
    ;;
exec)
    names="$2"
    [ "$3" = "--" ] || { echo "scylla-entrypoint: expected -- after NAMES" >&2; exit 2; }
    shift 3
    keep=()
    IFS=',' read -r -a list <<<"$names"
    for name in "${list[@]}"; do
        [ -n "$name" ] && keep+=("$name=${!name}")
    done
    # In the foreground (a background job would start with SIGINT ignored), not exec'd:
    # once ARGV exits, kill -1 ends every process of this uid it left behind (the
    # container's init and this shell are spared), so nothing outlives the run and the
    # exec's output stream closes.
    code=0
    env -i "${keep[@]}" "$@" || code=$?
    kill -9 -1 2>/dev/null || true
    exit "$code"
    ;;
*)
    exec "$@"
    ;;
esac
