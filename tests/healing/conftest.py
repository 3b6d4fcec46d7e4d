"""Fixtures for the healing tests: the sandbox's OpenAI-compatible LLM double on a real port, in this loop."""

from __future__ import annotations

import pytest
from llm_stub import said_nothing_yet, stub  # noqa: F401 (fixtures)

from crawler.observability import logs
from support import Clock


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fresh_redactor(monkeypatch):
    """A log redactor of this test's own: values a test registers (register_pii) stay in that test (the LLM
    tests use it; not autouse, so the other tests of this folder keep the process's redactor)."""
    monkeypatch.setattr(logs, "redactor", logs.Redactor())
