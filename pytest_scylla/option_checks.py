"""Start-up checks of the names options hold: agents, sandboxes and models.

Agents, sandboxes and judges come from factory hooks, so the names they answer to are
open; each factory lists its names through `pytest_scylla_known_names`. A name nobody
lists stops the session in one line that lists the known ones, before any run is paid for.
"""

from __future__ import annotations

import pytest

from pytest_scylla.hooks import NameKind
from pytest_scylla.models import is_priced, short_names
from pytest_scylla.settings import NO_JUDGE, ScyllaSettings

# pytest-timeout owns --timeout: given alone it kills a whole item with no run record.
TIMEOUT_HINT = (
    "pytest-scylla: --timeout is pytest-timeout's (it kills the pytest item, leaving no run "
    "record); the agent's own time limit is --run-timeout SECONDS"
)


def known_names(config: pytest.Config, kind: NameKind) -> list[str]:
    names: list[str] = []
    for listed in config.hook.pytest_scylla_known_names(config=config, kind=kind):
        for name in listed or ():
            if name not in names:
                names.append(name)
    return names


def check_names(config: pytest.Config, settings: ScyllaSettings) -> None:
    """Raise a one-line UsageError for an agent, sandbox or model nothing can make."""
    problems: list[str] = []
    runs_agents = not (settings.regenerate or settings.rejudge or settings.status)
    if runs_agents:
        for kind, name, flag in (
            ("agent", settings.agent, "--agent"),
            ("sandbox", settings.sandbox, "--sandbox"),
        ):
            known = known_names(config, kind)  # type: ignore[arg-type]
            if name not in known:
                problems.append(f"{flag} {name}: unknown {kind} (known: {', '.join(known)})")
    allow = settings.allow_unpriced_model
    claude_code = runs_agents and settings.agent == "claude-code"
    if claude_code and not allow and not is_priced(settings.model):
        problems.append(
            f"--model {settings.model}: no price known (known: {', '.join(short_names())}, "
            "or a full claude-... id of these; --scylla-allow-unpriced-model for a new one)"
        )
    if not (settings.regenerate or settings.status):
        judges = known_names(config, "judge")
        for model in settings.judge_models:
            if model in judges or is_priced(model) or allow:
                continue
            problems.append(
                f"judge {model}: unknown judge model (known: {', '.join(judges)}; "
                "--scylla-allow-unpriced-model for a new model)"
            )
    if problems:
        raise pytest.UsageError("pytest-scylla: " + "; ".join(problems))


class TimeoutHint:
    """Prints TIMEOUT_HINT once, as the session starts: a line the user sees before the runs
    (a warning would come only in the summary, after pytest-timeout had killed items)."""

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(TIMEOUT_HINT, yellow=True)


def timeout_hint(config: pytest.Config, settings: ScyllaSettings) -> str | None:
    """The hint for `--timeout` given without `--run-timeout`, else None."""
    if settings.run_timeout is not None:
        return None
    given = config.getoption("timeout", default=None)
    return TIMEOUT_HINT if given not in (None, 0, 0.0) else None


def without_plugin_judges(config: pytest.Config, settings: ScyllaSettings) -> ScyllaSettings:
    """The settings as the credentials check sees them: a judge a plugin lists under a name
    the price table does not know is the plugin's own, and needs no API key of ours."""
    listed = set(known_names(config, "judge"))
    api_judges = [m for m in settings.judge_models if not (m in listed and not is_priced(m))]
    if api_judges == settings.judge_models:
        return settings
    return settings.model_copy(update={"judge_model": NO_JUDGE, "add_judges": api_judges})
