-- 0009: answers of the LLM (crawler/ai/guard.py), valid against the schema they were asked in, keyed by
-- what they were asked for (purpose) and the caller's key (for healing: the page's structural hash).
-- A hit costs no budget and sends nothing. The model only ever saw masked text, so an answer holds
-- no personal data (selectors, labels); a caller drops an answer that failed its verification.
CREATE TABLE llm_cache (
    purpose    text NOT NULL,
    cache_key  text NOT NULL,
    model      text NOT NULL,
    answer     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    hits       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (purpose, cache_key)
);
