"""Turn an experiment aggregate into what the human reports render."""

from __future__ import annotations

from pytest_scylla.aggregate import ExperimentResult
from pytest_scylla.report.model import ReportInput

TIER_NAMES = {
    "T0": "Prompts",
    "T1": "Skills",
    "T2": "Tooling",
    "T3": "Delegation",
    "T4": "Hierarchy",
    "T5": "Hybrid",
    "T6": "Everything",
}


def judge_mode_text(result: ExperimentResult) -> str:
    if result.judge_modes == ["commands-only"]:
        return "commands only (LLM judging off: only rubric command: items scored)"
    return ", ".join(result.judge_modes) or "n/a"


def report_input(result: ExperimentResult, experiment_name: str = "") -> ReportInput:
    return ReportInput(result=result, experiment_name=experiment_name)
