"""Pytest fixtures for the fake Messages API (registered as a plugin by the main plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported by the fixture: every pytest process loads this module
    from pytest_scylla.testing.fake_api import FakeMessagesAPI


@pytest.fixture
def fake_api() -> Iterator[FakeMessagesAPI]:
    """A started ``FakeMessagesAPI`` with an empty script; stopped after the test.

    Script it with ``fake_api.set_replies([...])`` / ``fake_api.add_replies(...)`` or a
    responder (``set_replies(load_dry_run_script(path).as_responder())``), and queue faults
    with ``fake_api.inject(429)``.
    """
    from pytest_scylla.testing.fake_api import FakeMessagesAPI

    api = FakeMessagesAPI()
    api.start()
    try:
        yield api
    finally:
        api.stop()
