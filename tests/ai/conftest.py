"""Fixtures for the LLM access layer: the sandbox's OpenAI-compatible test double on a real port."""

from __future__ import annotations

import pytest
from llm_stub import said_nothing_yet, stub  # noqa: F401 (fixtures)

from crawler.observability import logs
from support import Clock


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch):
    """A log redactor of this test's own: values a test registers (register_pii) stay in that test."""
    monkeypatch.setattr(logs, "redactor", logs.Redactor())
