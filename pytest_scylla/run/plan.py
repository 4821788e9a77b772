"""What a run is and what executing it returns: types shared by the runner and the judges."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_scylla.record_head import RunHead
from pytest_scylla.records import ConsensusRecord, JudgeRecord, RunRecord, ScoreRecord
from pytest_scylla.results_layout import RunKey, run_dir
from pytest_scylla.spec.catalogue import ResolvedSubTest
from pytest_scylla.spec.load_experiment import Experiment


@dataclass(frozen=True)
class RunPlan:
    experiment: Experiment
    subtest: ResolvedSubTest
    run_number: int
    node_id: str

    def run_dir(self, results_dir: Path) -> Path:
        return run_dir(
            results_dir, self.experiment.id, self.subtest.tier, self.subtest.id, self.run_number
        )

    @property
    def key(self) -> RunKey:
        return RunKey(self.experiment.id, self.subtest.tier, self.subtest.id, self.run_number)


@dataclass
class RunOutcome:
    # None: --scylla-regenerate found nothing on disk. A head (record_head.py) only for a run
    # reported from disk as it is, always with its file's text.
    record: RunRecord | RunHead | None
    from_disk: bool = False
    notes: list[str] = field(default_factory=list)
    # The record file's text when the file holds exactly `record`: a finished run reported
    # from disk as it is, or one regenerate just wrote (neither is dumped again).
    record_text: str | None = None


class JudgeRunner(Protocol):
    """What the runner needs from LLM judging (implemented in judges/run_judges.py)."""

    def judge(
        self, plan: RunPlan, record: RunRecord, run_dir: Path, *, rejudge: bool
    ) -> tuple[list[JudgeRecord], ScoreRecord | None, ConsensusRecord | None]:
        """Run the judges this run still needs; the panel's records, score and consensus."""
        ...

    def rescore(
        self, plan: RunPlan, record: RunRecord
    ) -> tuple[ScoreRecord | None, ConsensusRecord | None]:
        """Score and consensus again from the judgments already in the record."""
        ...
