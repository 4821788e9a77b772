#!/usr/bin/env bash
# Start a local Docker engine for pytest-scylla's docker sandbox, if none answers yet.
#
# Idempotent: when `docker info` already answers, nothing happens. The engine is started
# with --bridge=none and --iptables=false because these machines must never get a docker
# bridge network or NAT rules: containers use network "none" or "host" only.
set -euo pipefail

LOG="${SCYLLA_DOCKERD_LOG:-/var/log/scylla-dockerd.log}"
WAIT_S="${SCYLLA_DOCKERD_WAIT_S:-60}"

if docker info >/dev/null 2>&1; then
    echo "dockerd already answers"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd not found: apt-get install docker.io" >&2
    exit 1
fi

# nohup + setsid: the engine outlives the shell (CI step, terminal) that started it.
nohup setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    >>"$LOG" 2>&1 </dev/null &
echo "started dockerd (pid $!), log in $LOG"

for _ in $(seq 1 "$WAIT_S"); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd answers"
        exit 0
    fi
    sleep 1
done
echo "dockerd did not answer within ${WAIT_S}s; last log lines:" >&2
tail -n 20 "$LOG" >&2
exit 1
