-- 0004: the scans service (crawler/api, crawler/worker.py). API users and their keys
-- (a hash only), who owns a scan, its priority and idempotency key, the job that runs
-- it, the site-definition versions behind scans and findings, and each listing's match
-- evidence (agreement levels and weights, never personal values).

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_name    text NOT NULL,
    -- sha256 of the key: keys are 256 random bits, so the hash cannot be walked back
    key_sha256   bytea NOT NULL UNIQUE,
    -- the key's first characters, so `keys list` can tell keys apart
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_name);

ALTER TABLE scans
    -- the API user who created the scan; NULL for scans created from a shell or the CLI
    ADD COLUMN owner               text,
    ADD COLUMN priority            text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    -- Idempotency-Key header, and a blind index (HMAC) of the request body it came with
    ADD COLUMN idempotency_key     text,
    ADD COLUMN request_index       bytea,
    -- site id -> sha256 of the site definition the scan ran with
    ADD COLUMN definitions         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- the procrastinate job that runs the scan, and how many crawls it took
    ADD COLUMN job_id              bigint,
    ADD COLUMN attempts            integer NOT NULL DEFAULT 0,
    ADD COLUMN cancel_requested_at timestamptz,
    -- {site: {data_type: findings}} of a finished scan, computed from its findings when it ends
    -- (crawler/store/scans.py finish_scan, jobs.end_unfinished) so stats need not count them again;
    -- NULL = not summarised (running, pending, or finished before this column): counted live
    ADD COLUMN findings_summary    jsonb;
CREATE UNIQUE INDEX scans_owner_idempotency_idx ON scans (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- the caller's scans, newest first, with or without a status filter (keyset pagination)
CREATE INDEX scans_owner_created_idx ON scans (owner, created_at DESC, id DESC);
CREATE INDEX scans_owner_status_created_idx ON scans (owner, status, created_at DESC, id DESC);

ALTER TABLE findings
    ADD COLUMN definition_sha256 text,
    ADD COLUMN evidence          jsonb;
-- a scan's listings in order (a listing is its findings with one listing_url_index)
CREATE INDEX findings_scan_listing_idx ON findings (scan_id, website_id, listing_url_index, id);
