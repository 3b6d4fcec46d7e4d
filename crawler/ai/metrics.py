"""Prometheus metrics of the LLM access layer, one set per process (``LLM_METRICS``).

A collector (not registered anywhere by itself) that any registry may include, as the crawl's
(``crawler.observability.metrics.CrawlMetrics``) or a command's own:

    crawler_llm_calls_total{purpose, outcome}   every complete_json: ok, cache_hit, malformed, invalid,
                                                timeout, error, breaker_open, budget_calls, budget_usd,
                                                refused_unmasked, guard_error
    crawler_llm_cost_usd_total                  dollars from the usage the server reported
    crawler_llm_tokens_total{kind}              prompt / completion tokens
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily


class LLMMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.tokens: Counter[str] = Counter()
        self.cost_usd = 0.0

    def call(self, purpose: str, outcome: str) -> None:
        with self._lock:
            self.calls[(purpose, outcome)] += 1

    def usage(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        with self._lock:
            self.tokens["prompt"] += prompt_tokens
            self.tokens["completion"] += completion_tokens
            self.cost_usd += cost_usd

    def describe(self) -> list:
        return []  # families appear as calls happen; no describe-time checks

    def collect(self) -> Iterator[CounterMetricFamily]:
        with self._lock:
            calls, tokens, cost = dict(self.calls), dict(self.tokens), self.cost_usd
        family = CounterMetricFamily(
            "crawler_llm_calls",
            "LLM requests by purpose and outcome (cache hits included).",
            labels=("purpose", "outcome"),
        )
        for (purpose, outcome), count in sorted(calls.items()):
            family.add_metric([purpose, outcome], count)
        yield family
        yield CounterMetricFamily(
            "crawler_llm_cost_usd", "LLM cost in US dollars (reported usage x prices).", value=cost
        )
        family = CounterMetricFamily("crawler_llm_tokens", "LLM tokens by kind.", labels=("kind",))
        for kind in ("prompt", "completion"):
            family.add_metric([kind], tokens.get(kind, 0))
        yield family


LLM_METRICS = LLMMetrics()
