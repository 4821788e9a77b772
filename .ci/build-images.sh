#!/usr/bin/env bash
# Build scylla-base (debootstrap, offline apt mirror) and scylla-runner; no-op when both
# match their inputs. Pass --force to rebuild. Needs root and a running dockerd
# (.ci/start-dockerd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pytest_scylla.sandbox.docker_image "$@"
