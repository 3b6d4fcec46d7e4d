"""Settings of the LLM access layer (crawler/ai/): the OpenAI-compatible server, prices, budget, breaker.

These replace the three ``OPENAI_*`` declarations of ``crawler/settings_spec.py`` (``AI``) once the
registry lists ``COMPONENTS`` from here. Until then ``crawler.ai`` reads any of them missing from the
crawler's settings at the defaults declared below (``setting_value``).
"""

from __future__ import annotations

from crawler.setting import Component, Setting

AI = Component(
    "AI (OpenAI-compatible server, budget, breaker)",
    "crawler/ai/",
    (
        Setting(
            "OPENAI_BASE_URL",
            "url",
            "",
            "any OpenAI-compatible server (empty: the `openai` package's default, api.openai.com); "
            "`python -m sandbox` serves a scripted test double at `http://127.0.0.1:8500/v1` (not a model)",
        ),
        Setting(
            "OPENAI_API_KEY",
            "str",
            "",
            "its key; empty: AI features use their heuristic path (said once in the log)",
            secret=True,
        ),
        Setting("OPENAI_MODEL", "str", "gpt-4o-mini", "model name sent to that server"),
        Setting(
            "LLM_TIMEOUT_SECONDS",
            "number",
            "30",
            "one LLM call gives up after this long (no retries: a failed call falls back to heuristics)",
            above=0,
        ),
        Setting(
            "LLM_PRICE_INPUT_PER_MTOK",
            "number",
            "0.15",
            "US dollars per million prompt tokens, for the cost metric and the daily budget",
            min=0,
        ),
        Setting(
            "LLM_PRICE_OUTPUT_PER_MTOK",
            "number",
            "0.6",
            "US dollars per million completion tokens, for the cost metric and the daily budget",
            min=0,
        ),
        Setting(
            "HEAL_LLM_MAX_CALLS_PER_HOUR",
            "int",
            "30",
            "LLM calls allowed in any sliding hour, shared by every worker through Redis when `REDIS_URL` is "
            "set (0 = none); cache hits are free",
            min=0,
        ),
        Setting(
            "HEAL_LLM_MAX_USD_PER_DAY",
            "number",
            "1.0",
            "LLM spending allowed per UTC day (from the usage the server reports and the prices above); "
            "a call starts only while the day's spending is below it",
            min=0,
        ),
        Setting(
            "LLM_BREAKER_FAILURES",
            "int",
            "3",
            "failed LLM calls (5xx, 429, timeouts, connection errors) within `LLM_BREAKER_WINDOW_SECONDS` "
            "that open the breaker on the endpoint",
            min=1,
        ),
        Setting(
            "LLM_BREAKER_WINDOW_SECONDS",
            "number",
            "300",
            "the window in which the breaker counts failures",
            above=0,
        ),
        Setting(
            "LLM_BREAKER_COOLDOWN_SECONDS",
            "number",
            "300",
            "an open breaker lets no call through for this long, then one probe call decides",
            above=0,
        ),
    ),
)

COMPONENTS = (AI,)
DEFAULTS = {setting.name: setting.default for setting in AI.settings}


def setting_value(settings, name: str) -> str:
    """The raw value of one of these settings: the crawler's when it has it, else the declared default."""
    value = settings.get(name) if settings is not None else None
    return DEFAULTS[name] if value is None else str(value)
