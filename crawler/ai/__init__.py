"""The guarded LLM access layer: an OpenAI-compatible client, masking, budget, breaker, cache, metrics.

    client = LLMClient.from_settings(settings)        # None without OPENAI_API_KEY: use heuristics
    page = condense_html(html)                        # masked structure of the page
    answer = await client.complete_json("heal", SYSTEM, page, schema, cache_key=structural_hash)
    if answer is None: ...                            # budget, breaker, timeout, bad answer: heuristics

Nothing personal leaves the process: callers mask (``condense_html``, ``mask_text``) and the client
checks again (``assert_masked``) before sending. See DESIGN.md, "LLM calls".
"""

import importlib

# imported on first use: the settings registry imports crawler.ai.settings_spec, and the client imports
# the settings (through the log redactor): eager imports here would be a cycle
_WHERE = {
    "LLMAnswer": "client",
    "LLMClient": "client",
    "LocalCache": "guard",
    "PostgresCache": "guard",
    "UnmaskedText": "masking",
    "assert_masked": "masking",
    "condense_html": "masking",
    "mask_text": "masking",
    "LLM_METRICS": "metrics",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'crawler.ai' has no attribute {name!r}")
    return getattr(importlib.import_module(f"crawler.ai.{_WHERE[name]}"), name)


__all__ = [
    "LLM_METRICS",
    "LLMAnswer",
    "LLMClient",
    "LocalCache",
    "PostgresCache",
    "UnmaskedText",
    "assert_masked",
    "condense_html",
    "mask_text",
]
