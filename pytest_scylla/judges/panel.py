"""A panel of judges for one run: which judges to (re)run, run them side by side, collect.

Re-use rules (design section 6):
- default: an existing ok judgment is kept; missing or failed judges run;
- `rejudge=True`: every judge runs again, or only `only_models` when given
  (`--scylla-rejudge --add-judge M`), the others keep their existing records.
Judge model names must be unique within a panel: a judge's directory and record are keyed
by its model. Judges are I/O bound (waiting on the API), so a few threads run them
concurrently; the shared backoff still paces the requests. The threads are daemons and the
caller waits for them in short joins: Ctrl-C (or SIGTERM) reaches the session at once, not
after a judge's retries have run out (minutes of backoff), and a judge still waiting then
dies with the process; its run is recorded as interrupted and judged by the next session.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from pytest_scylla.judges.llm import Judge
from pytest_scylla.judges.prompt import JudgeInput
from pytest_scylla.records import JudgeRecord
from pytest_scylla.redact import session_redactor
from pytest_scylla.spec.rubric import NormalizedItem

DEFAULT_MAX_WORKERS = 4
MAX_ERROR_CHARS = 300
_JOIN_SLICE_S = 0.2  # how long the caller waits between chances for Ctrl-C to arrive
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def judge_dir_name(model: str) -> str:
    """A directory name for a model id (ids may hold '/' or ':' on some providers)."""
    name = _UNSAFE.sub("_", model).strip(".")
    return name or "judge"


class JudgePanel:
    def __init__(
        self,
        models: list[str],
        judges_factory: Callable[[str], Judge],
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        if len(set(models)) != len(models):
            raise ValueError(f"judge models must be unique in a panel: {models}")
        self.models = list(models)
        self.judges_factory = judges_factory
        self.max_workers = max_workers

    def run(
        self,
        judge_input: JudgeInput,
        items: list[NormalizedItem],
        judges_dir: Path,
        existing: list[JudgeRecord],
        *,
        rejudge: bool = False,
        only_models: set[str] | None = None,
    ) -> list[JudgeRecord]:
        """The panel's records in panel order (plus any `only_models` not in the panel)."""
        models = self.models + sorted((only_models or set()) - set(self.models))
        previous = {record.model: record for record in existing}
        to_run: list[str] = []
        for model in models:
            record = previous.get(model)
            if rejudge:
                wanted = only_models is None or model in only_models
            else:
                wanted = record is None or record.status != "ok"
            if wanted:
                to_run.append(model)

        fresh = run_in_daemon_threads(
            {
                model: (
                    lambda model=model: self._run_one(  # type: ignore[misc]
                        model, judge_input, items, judges_dir / judge_dir_name(model)
                    )
                )
                for model in to_run
            },
            max_workers=self.max_workers,
        )

        records: list[JudgeRecord] = []
        for model in models:
            record = fresh.get(model) or previous.get(model)
            if record is not None:
                records.append(record)
        return records

    def _run_one(
        self, model: str, judge_input: JudgeInput, items: list[NormalizedItem], out_dir: Path
    ) -> JudgeRecord:
        # A judge that crashes (a bug, a full disk) must not lose the other judges' work:
        # it becomes a failed record, the run an error, and a later session retries it.
        try:
            return self.judges_factory(model).judge(judge_input, items, out_dir)
        except Exception as error:
            redact = session_redactor()
            message = redact(str(error))[:MAX_ERROR_CHARS]
            return JudgeRecord(
                model=model,
                status="failed",
                error=f"judge crashed: {error.__class__.__name__}: {message}",
            )


def run_in_daemon_threads(
    calls: dict[str, Callable[[], JudgeRecord]], *, max_workers: int
) -> dict[str, JudgeRecord]:
    """Each call's result by name, at most max_workers at a time, in daemon threads.

    A call that dies of something other than an Exception (``_run_one`` turns those into
    failed records) leaves no result: its name is missing from the answer, and the run stays
    unjudged by that model. The caller joins in slices, so a KeyboardInterrupt raised in the
    main thread stops the wait at once.
    """
    pending = list(calls.items())
    results: dict[str, JudgeRecord] = {}
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                name, call = pending.pop(0)
            result = call()
            with lock:
                results[name] = result

    threads = (
        [
            threading.Thread(target=worker, name=f"judge-{index}", daemon=True)
            for index in range(max(1, min(max_workers, len(calls))))
        ]
        if calls
        else []
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(_JOIN_SLICE_S)
    return results
