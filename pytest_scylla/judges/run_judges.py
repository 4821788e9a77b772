"""LLM judging of one run, as the runner needs it: build what the judges see from the saved
run files, run the panel (only the judges still missing), and build the consensus."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic

from pytest_scylla.judges.backoff import SharedBackoff
from pytest_scylla.judges.cache import JudgeCache
from pytest_scylla.judges.checks import command_item_scores
from pytest_scylla.judges.consensus import NoJudgeSucceeded, build_consensus
from pytest_scylla.judges.llm import LlmJudge
from pytest_scylla.judges.panel import JudgePanel
from pytest_scylla.judges.prompt import JudgeInput
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import ChecksRecord, ConsensusRecord, JudgeRecord, RunRecord, ScoreRecord
from pytest_scylla.redact import Redactor
from pytest_scylla.results_layout import DIFF_FILE
from pytest_scylla.run.plan import JudgeRunner, RunPlan
from pytest_scylla.run.scoring import commands_only_result
from pytest_scylla.settings import ScyllaSettings

if TYPE_CHECKING:
    from pytest_scylla.judges.llm import Judge

STATE_DIR = ".scylla"
# A local server that wants no key (ANTHROPIC_BASE_URL alone); the SDK insists on one.
NO_KEY = "no-key"


def judge_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The one credential the judges' client gets: `{"api_key": ...}` or `{"auth_token": ...}`.

    The SDK refuses both at once ("Pass at most one of api_key=, auth_token="), and reads
    the environment the same way when given neither: ANTHROPIC_API_KEY wins over
    ANTHROPIC_AUTH_TOKEN (anthropic `static_credential_from_env`). Passing the one we chose
    keeps its other sources (profiles, federation) out of a measurement.
    """
    api_key = environ.get("ANTHROPIC_API_KEY")
    if api_key:
        return {"api_key": api_key}
    auth_token = environ.get("ANTHROPIC_AUTH_TOKEN")
    if auth_token:
        return {"auth_token": auth_token}
    # Without a base URL the SDK's own error ("Could not resolve authentication method")
    # says what is missing; the plugin's preflight stops such a session earlier anyway.
    return {"api_key": NO_KEY} if environ.get("ANTHROPIC_BASE_URL") else {}


class LlmJudgeRunner(JudgeRunner):
    def __init__(
        self,
        settings: ScyllaSettings,
        redactor: Redactor,
        *,
        judge_factory: Callable[[str], Judge] | None = None,
        request_hook: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`judge_factory` makes each panel member (the session passes the
        pytest_scylla_make_judge hook, whose built-in answer is `llm_judge`);
        `request_hook` sees every LLM judge request before it is sent."""
        self.settings = settings
        self.redactor = redactor
        self.request_hook = request_hook
        state = settings.results_dir / STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
        self.backoff = SharedBackoff(
            state / "api-backoff.json", max_total_s=settings.api_retry_budget
        )
        self.cache = JudgeCache(state / "judge-cache")
        self.panel = JudgePanel(settings.judge_models, judge_factory or self.llm_judge)

    @cached_property
    def pricing(self) -> PricingTable:
        return PricingTable.load()

    @cached_property
    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(**judge_credentials(os.environ))

    def llm_judge(self, model: str) -> Judge:
        return LlmJudge(
            model,
            client=self.client,
            backoff=self.backoff,
            # A rejudge asks the models again: a cached answer would just repeat itself.
            cache=None if self.settings.rejudge else self.cache,
            pricing=self.pricing,
            redactor=self.redactor,
            request_timeout_s=self.settings.judge_timeout,
            unknown_price="zero" if self.settings.allow_unpriced_model else "error",
            request_hook=self.request_hook,
        )

    _make_judge = llm_judge  # the name tests knew it by

    def judge(
        self, plan: RunPlan, record: RunRecord, run_dir: Path, *, rejudge: bool
    ) -> tuple[list[JudgeRecord], ScoreRecord | None, ConsensusRecord | None]:
        experiment = plan.experiment
        rubric = experiment.normalized_rubric
        items = [item for item in rubric.items() if item.command is None]
        if not items:  # everything is objective: nothing for a model to judge
            return [], commands_only_result(experiment, record, self.settings.pass_threshold), None
        diff_path = run_dir / DIFF_FILE
        judge_input = JudgeInput(
            task_prompt=experiment.prompt,
            criteria=experiment.criteria,
            rubric=rubric,
            rubric_text=(experiment.directory / experiment.spec.validation.rubric_file).read_text(
                encoding="utf-8"
            ),
            diff=diff_path.read_text(encoding="utf-8") if diff_path.is_file() else "",
            files=record.workspace.files if record.workspace else [],
            checks=record.checks or ChecksRecord(),
            run_label=f"{experiment.id} {record.tier}/{record.subtest} run {record.run}",
        )
        # `--scylla-rejudge --add-judge M`: only the judges this run has no ok judgment from.
        # `--add-judge` also builds the panel, so when every one of them has judged already
        # the rejudge is a plain one: every judge again.
        judged = {judge.model for judge in record.judges if judge.status == "ok"}
        new_judges = set(self.settings.add_judges) - judged
        only_models = new_judges if rejudge and new_judges else None
        judges = self.panel.run(
            judge_input,
            items,
            run_dir / "judges",
            record.judges,
            rejudge=rejudge,
            only_models=only_models,
        )
        return judges, *self._score(plan, record, judges)

    def rescore(
        self, plan: RunPlan, record: RunRecord
    ) -> tuple[ScoreRecord | None, ConsensusRecord | None]:
        return self._score(plan, record, record.judges)

    def _score(
        self, plan: RunPlan, record: RunRecord, judges: list[JudgeRecord]
    ) -> tuple[ScoreRecord | None, ConsensusRecord | None]:
        experiment = plan.experiment
        rubric = experiment.normalized_rubric
        if not any(item.command is None for item in rubric.items()):
            return commands_only_result(experiment, record, self.settings.pass_threshold), None
        command_items = command_item_scores(
            rubric, (record.checks or ChecksRecord()).rubric_commands
        )
        try:
            return build_consensus(
                rubric,
                command_items,
                judges,
                pass_threshold=experiment.pass_threshold(self.settings.pass_threshold),
                grade_scale=experiment.rubric.grading.grade_scale or None,
            )
        except NoJudgeSucceeded:
            return None, None
