"""Fixtures shared by the middleware state tests."""

import pytest

from support import Clock


@pytest.fixture
def clock():
    return Clock()
