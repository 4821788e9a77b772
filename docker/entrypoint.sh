#!/bin/bash
# Entry point of scylla-runner containers.
#
#   scylla-entrypoint idle                  keep the container alive (its main process);
#                                           every run is a `docker exec` into it.
#   scylla-entrypoint exec NAMES -- ARGV    run ARGV with exactly the variables named in
#                                           NAMES (comma-separated) and nothing else: the
#                                           image's and docker's own (HOSTNAME, PATH...)
#                                           must not leak into the run's environment.
#   scylla-entrypoint ARGV...               run ARGV as is (docker run image cmd...).
set -euo pipefail

case "${1:-idle}" in
idle)
    # sleep in the background so TERM (docker stop) ends the container at once.
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $! || true
    done
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
    exec env -i "${keep[@]}" "$@"
    ;;
*)
    exec "$@"
    ;;
esac
