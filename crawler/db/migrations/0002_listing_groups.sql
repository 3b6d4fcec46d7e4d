-- 0002: fuzzy dedup of person listings. Listings judged to be the same person
-- (across pages or sites) share a listing_group; each decision is recorded.

ALTER TABLE findings ADD COLUMN listing_group uuid;
CREATE INDEX findings_listing_group_idx ON findings (listing_group) WHERE listing_group IS NOT NULL;

CREATE TABLE listing_merges (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id             uuid NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    website_id          text NOT NULL,
    listing_url_index   bytea NOT NULL,
    merged_with_index   bytea NOT NULL,
    listing_group       uuid NOT NULL,
    score               real NOT NULL CHECK (score >= 0 AND score <= 1),
    -- what the score was made of (names, shared contacts...), no personal values
    evidence            jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scan_id, listing_url_index, merged_with_index)
);
CREATE INDEX listing_merges_group_idx ON listing_merges (listing_group);
