"""The mailing spider's progress line (sent/total, rate, ETA, on an injected clock) and the summary's
review lines (row numbers and reasons only)."""

from __future__ import annotations

from collections import Counter

import pytest

from crawler.store.mailings import Summary, reason_code
from spiders.mailing import Progress, duration, review_lines

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_rate_and_eta_on_a_clock():
    clock = Clock()
    progress = Progress(total=110, already_sent=10, every=30, clock=clock)
    assert not progress.due()
    for _ in range(20):
        clock.now += 2
        progress.record_sent()
    assert progress.due()
    assert progress.line(remaining=80) == "sent 30/110, 0.50/s, ETA 2m40s"
    assert not progress.due()
    assert Progress(5, 5, 30, clock).line(remaining=0) == "sent 5/5, 0.00/s, ETA 0m00s"
    assert Progress(5, 0, 30, clock).line(remaining=5).endswith("ETA unknown")
    assert duration(3725) == "1h02m05s"


def test_review_lines_group_rows_by_reason():
    summary = Summary(
        Counter({"sent": 3, "invalid": 3, "unknown": 1}),
        [
            (3, "invalid", "syntax"),
            (4, "unknown", "answer_lost: the run stopped while it was being sent"),
            (6, "invalid", "duplicate of row 2"),
            (9, "invalid", "syntax"),
        ],
    )
    assert review_lines(summary) == [
        "invalid (syntax): 2 row(s): 3, 9",
        "unknown (answer_lost): 1 row(s): 4",
        "invalid (duplicate): 1 row(s): 6 (of row 2)",
    ]
    assert summary.invalid_by_reason() == {"syntax": 2, "duplicate": 1}
    assert summary.valid == 4
    assert reason_code("provider_rejected: mail API refused the message: 400") == "provider_rejected"


def test_long_review_lists_are_cut():
    summary = Summary(Counter({"invalid": 60}), [(n, "invalid", "empty") for n in range(2, 62)])
    (line,) = review_lines(summary)
    assert line.startswith("invalid (empty): 60 row(s): 2, 3,") and line.endswith(" and 10 more")
