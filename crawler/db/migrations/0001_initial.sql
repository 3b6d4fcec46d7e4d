-- 0001: the initial schema. Personal data is only ever stored encrypted
-- (bytea envelopes from crawler.security: key id + nonce + AES-256-GCM
-- ciphertext) with an HMAC blind index where equality must be tested.

-- One person-search job: who (encrypted), where, how far it got.
CREATE TABLE scans (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    spider            text NOT NULL,
    -- the search parameters (name, e-mail, phone, address...) as one encrypted JSON document
    target_ciphertext bytea,
    -- blind index of the normalised full name: "every scan of this person" without decrypting
    target_name_index bytea,
    sites             text[] NOT NULL DEFAULT '{}',
    -- per-site counters: {"site": {"listings": n, "accepted": n, "rejected": n, "errors": {...}}}
    counters          jsonb NOT NULL DEFAULT '{}'::jsonb,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scans_status_created_idx ON scans (status, created_at DESC);
CREATE INDEX scans_target_name_idx ON scans (target_name_index);

-- The broker sites, mirrored from the site definitions (spiders/sites/*.yaml).
CREATE TABLE websites (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    base_url          text NOT NULL,
    render_mode       text NOT NULL DEFAULT 'http' CHECK (render_mode IN ('http', 'browser')),
    enabled           boolean NOT NULL DEFAULT true,
    definition        jsonb NOT NULL DEFAULT '{}'::jsonb,
    definition_sha256 text,
    opt_out           jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Evidence: content-addressed screenshot files (encrypted on disk) under SCREENSHOTS_DIR.
CREATE TABLE screenshots (
    sha256      text PRIMARY KEY,
    path        text NOT NULL,
    mime_type   text NOT NULL DEFAULT 'image/png',
    bytes       integer NOT NULL CHECK (bytes >= 0),
    key_id      text NOT NULL,
    captured_at timestamptz NOT NULL DEFAULT now()
);

-- One exposed datum of a person on one listing.
CREATE TABLE findings (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scan_id                uuid NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    website_id             text NOT NULL REFERENCES websites (id),
    data_type              text NOT NULL
                           CHECK (data_type IN ('name', 'email', 'phone', 'address', 'relative', 'age')),
    value_ciphertext       bytea NOT NULL,
    value_index            bytea NOT NULL,
    listing_url_ciphertext bytea NOT NULL,
    listing_url_index      bytea NOT NULL,
    -- key that encrypted this row's ciphertexts (rotation finds old rows by it)
    key_id                 text NOT NULL,
    confidence             real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    screenshot_sha256      text REFERENCES screenshots (sha256),
    status                 text NOT NULL DEFAULT 'found'
                           CHECK (status IN ('found', 'removal_requested', 'removed', 'reappeared', 'dismissed')),
    found_at               timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- a replayed batch never duplicates a finding
    UNIQUE (scan_id, website_id, data_type, value_index, listing_url_index)
);
CREATE INDEX findings_value_index_idx ON findings (value_index);
CREATE INDEX findings_website_status_idx ON findings (website_id, status);
CREATE INDEX findings_key_id_idx ON findings (key_id);
CREATE INDEX findings_screenshot_idx ON findings (screenshot_sha256) WHERE screenshot_sha256 IS NOT NULL;

-- Records from events APIs; id is the event's own id, so replays are no-ops.
CREATE TABLE events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload     jsonb NOT NULL,
    source      text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
-- BRIN: tiny and cheap to maintain under bulk COPY; serves time-range scans.
CREATE INDEX events_occurred_at_brin ON events USING brin (occurred_at);
CREATE INDEX events_type_idx ON events (type);

-- Where each ingestion partition stands; committed with the rows it covers.
CREATE TABLE ingest_checkpoints (
    source         text NOT NULL,
    partition_key  text NOT NULL,
    cursor         text,
    position_at    timestamptz,
    rows_committed bigint NOT NULL DEFAULT 0,
    completed      boolean NOT NULL DEFAULT false,
    state          jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition_key)
);

-- Requests that exhausted their retries and records that failed validation:
-- nothing is dropped silently. URLs and records may carry personal data, so
-- they are kept encrypted; reasons and field names are in the clear.
CREATE TABLE dead_letters (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('request', 'record')),
    spider             text NOT NULL,
    source             text,
    scan_id            uuid REFERENCES scans (id) ON DELETE SET NULL,
    reason             text NOT NULL,
    fields             text[] NOT NULL DEFAULT '{}',
    method             text,
    last_status        integer,
    attempts           integer NOT NULL DEFAULT 0,
    -- the serialized request (enough to replay it) or the rejected record
    payload_ciphertext bytea,
    key_id             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    replayed_at        timestamptz
);
CREATE INDEX dead_letters_pending_idx ON dead_letters (spider, reason) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
