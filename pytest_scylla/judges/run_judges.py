"""LLM judging of one run, as the runner needs it: build what the judges see from the saved
run files, run the panel (only the judges still missing), and build the consensus."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_scylla.credentials import NO_KEY as NO_KEY  # tests and plugins knew it here
from pytest_scylla.credentials import ClaudeCredentials, JudgeCredentials, api_credentials
from pytest_scylla.credentials import judge_credentials as choose_judge_credentials
from pytest_scylla.judges.backoff import SharedBackoff
from pytest_scylla.judges.cache import JudgeCache
from pytest_scylla.judges.checks import command_item_scores
from pytest_scylla.judges.cli_judge import CliJudge
from pytest_scylla.judges.consensus import NoJudgeSucceeded, build_consensus
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
    import anthropic

    from pytest_scylla.judges.llm import Judge

STATE_DIR = ".scylla"


def judge_credentials(environ: Mapping[str, str]) -> dict[str, Any]:
    """The one credential the API judges' client gets: `{"api_key": ...}` or
    `{"auth_token": ...}` (credentials.api_credentials), `{}` when there is none.

    The SDK refuses both at once ("Pass at most one of api_key=, auth_token="), and reads
    the environment the same way when given neither: ANTHROPIC_API_KEY wins over
    ANTHROPIC_AUTH_TOKEN (anthropic `static_credential_from_env`). Passing the one we chose
    keeps its other sources (profiles, federation) out of a measurement.
    """
    chosen = api_credentials(environ)
    return dict(chosen.client_kwargs) if chosen is not None else {}


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
        # Imported on first need: the SDK takes a second to import, and a regenerate, which
        # makes this runner only to rescore, never sends a request.
        import anthropic

        return anthropic.Anthropic(**judge_credentials(os.environ))

    @cached_property
    def credentials(self) -> JudgeCredentials | None:
        """Which backend judges, with what (the preflight asked the same function)."""
        return choose_judge_credentials(self.settings.judge_backend)

    def llm_judge(self, model: str) -> Judge:
        """The built-in judge of `model`: through the CLI when the judges' credential is a
        Claude login or an OAuth token (or --judge-backend cli), else through the API."""
        chosen = self.credentials
        if chosen is not None and chosen.cli is not None:
            return self.cli_judge(model, chosen.cli)
        from pytest_scylla.judges.llm import LlmJudge  # with the SDK, on first need

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

    def cli_judge(self, model: str, credentials: ClaudeCredentials) -> CliJudge:
        return CliJudge(
            model,
            credentials=credentials,
            pricing=self.pricing,
            cache=None if self.settings.rejudge else self.cache,
            claude_bin=self.settings.claude_bin,
            redactor=self.redactor,
            timeout_s=self.settings.judge_timeout,
        )

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
