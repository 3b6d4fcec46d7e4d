-- 0003: candidate listings the matcher judged not to be the scan's target. They are
-- kept, not dropped, so an audit can see what was seen and why it was turned down:
-- the listing URL (encrypted + blind index), the confidence, the threshold it missed
-- and the per-field evidence (agreement levels and weights, never personal values).

CREATE TABLE rejected_candidates (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id                uuid NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    website_id             text NOT NULL REFERENCES websites (id),
    listing_url_ciphertext bytea NOT NULL,
    listing_url_index      bytea NOT NULL,
    key_id                 text NOT NULL,
    confidence             real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    threshold              real NOT NULL CHECK (threshold >= 0 AND threshold <= 1),
    evidence               jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_at             timestamptz NOT NULL DEFAULT now(),
    -- a replayed batch never duplicates a decision
    UNIQUE (scan_id, website_id, listing_url_index)
);
CREATE INDEX rejected_candidates_website_idx ON rejected_candidates (website_id, decided_at);
CREATE INDEX rejected_candidates_key_id_idx ON rejected_candidates (key_id);
