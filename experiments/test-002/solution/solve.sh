#!/usr/bin/env bash
# Oracle solution for test-002: run with the workspace as the current directory.
# The last window starts at index len(found) - n, so the range must include it.
set -euo pipefail
sed -i 's/for i in range(len(found) - n)\]/for i in range(len(found) - n + 1)]/' textstats/core.py
grep -q 'range(len(found) - n + 1)\]' textstats/core.py
