"""Baseline checks shared by the xdist workers of one session on one host.

`BaselineCache` (services.py) keeps one baseline per starting state and process; under
`-n 8` every worker would run the same baseline checks again (a sandbox start and the
checks) for each starting state it meets, eight times the work of `-n 1` on the same cores.
The workers of one session share xdist's test run id (`PYTEST_XDIST_TESTRUNUID`): the
first worker that needs a baseline runs it under a file lock and saves it, the others wait
for the lock and read it, so the record names the run it came from, as within a process.

The files live in the host's work folder, which no sandbox sees (bubblewrap hides the work
root, a container mounts only its run's folders); the harness writes them atomically and
validates them when read, and a file that does not validate is run again. The folder's name
ends with the pid of the workers' parent (the session's controller for local workers), so
`sandbox/reaper.py` sweeps it once that session is gone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock
from pydantic import ValidationError

from pytest_scylla.records import CheckResult, atomic_write_text
from pytest_scylla.run.services import Baseline, BaselineCache, kept_baseline

TEST_RUN_ID_ENV = "PYTEST_XDIST_TESTRUNUID"


class SharedBaselines(BaselineCache):
    """Baselines by (starting commit, fixture hash), found in or saved to files
    (`<work root>/runs/baselines-<test run id>-<pid>/<key>.json`) besides the process's own
    memory."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def _find_or_run(
        self, key: str, node_id: str, run: Callable[[], list[CheckResult]]
    ) -> tuple[Baseline | None, list[CheckResult] | None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key[:32]}.json"
        with FileLock(f"{path}.lock"):
            found = _read(path)
            if found is not None:
                return found, None
            results = run()
            kept = kept_baseline(node_id, results)
            if kept is not None:
                atomic_write_text(path, kept.model_dump_json())
            return kept, results


def _read(path: Path) -> Baseline | None:
    try:
        return Baseline.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


@functools.cache
def shared_baselines(runs_root: Path) -> SharedBaselines | None:
    """The session's shared baselines on an xdist worker; None in a session without
    workers, where the process's own cache is all there is."""
    test_run_id = os.environ.get(TEST_RUN_ID_ENV, "")
    if not test_run_id.isalnum():
        return None
    return SharedBaselines(runs_root / f"baselines-{test_run_id}-{os.getppid()}")
