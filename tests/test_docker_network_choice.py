"""Which network a run's container gets: none unless the agent must reach the API."""

from __future__ import annotations

import pytest

from pytest_scylla.sandbox.preflight import container_network, docker_settings
from pytest_scylla.settings import ScyllaSettings


@pytest.mark.parametrize(
    ("agent", "base_url", "expected"),
    [
        ("oracle", None, "none"),
        ("nop", "http://127.0.0.1:8080", "none"),
        ("command", "https://api.anthropic.com", "none"),
        ("claude-code", None, "bridge"),
        ("claude-code", "https://api.anthropic.com", "bridge"),
        ("claude-code", "http://127.0.0.1:40123", "host"),
        ("claude-code", "http://localhost:40123", "host"),
        ("claude-code", "http://[::1]:40123", "host"),
    ],
)
def test_auto_gives_a_network_only_to_an_agent_that_calls_the_api(
    monkeypatch: pytest.MonkeyPatch, agent: str, base_url: str | None, expected: str
) -> None:
    if base_url is None:
        monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    else:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", base_url)
    settings = ScyllaSettings(agent=agent, docker_network="auto")
    assert container_network(settings) == expected
    assert docker_settings(settings).network == expected


def test_a_rejudge_starts_no_agent_and_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:40123")
    settings = ScyllaSettings(agent="claude-code", docker_network="auto", rejudge=True)
    assert container_network(settings) == "none"


@pytest.mark.parametrize("chosen", ["none", "host", "bridge"])
def test_an_explicit_network_is_kept(monkeypatch: pytest.MonkeyPatch, chosen: str) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:40123")
    settings = ScyllaSettings(agent="oracle", docker_network=chosen)  # type: ignore[arg-type]
    assert container_network(settings) == chosen
