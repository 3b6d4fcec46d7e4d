"""The guarded LLM access layer: an OpenAI-compatible client, masking, budget, breaker, cache, metrics.

    client = LLMClient.from_settings(settings)        # None without OPENAI_API_KEY: use heuristics
    page = condense_html(html)                        # masked structure of the page
    answer = await client.complete_json("heal", SYSTEM, page, schema, cache_key=structural_hash)
    if answer is None: ...                            # budget, breaker, timeout, bad answer: heuristics

Nothing personal leaves the process: callers mask (``condense_html``, ``mask_text``) and the client
checks again (``assert_masked``) before sending. See DESIGN.md, "LLM calls".
"""

from crawler.ai.client import LLMAnswer, LLMClient
from crawler.ai.guard import LocalCache, PostgresCache
from crawler.ai.masking import UnmaskedText, assert_masked, condense_html, mask_text
from crawler.ai.metrics import LLM_METRICS

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
