-- 0006: removal. One opt-out request per owner and listing, carried through the site's opt-out
-- flow (spiders/sites/*.yaml `opt_out.steps`) by `scrapy crawl optout`, with a history row per
-- transition, tasks for what a person must do (a CAPTCHA, a phone call), and the person's
-- "is this you?" answers for listings the matcher scored in the review band. No new plaintext:
-- a request names its listing by (website, blind index of the URL) and the scan that found it,
-- whose findings hold the encrypted URL and whose target holds the encrypted person.

CREATE TABLE removal_requests (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the API user who asked (NULL: the CLI)
    owner             text,
    -- the newest scan that found the listing: its findings hold the encrypted listing URL, its
    -- target the encrypted person the flow's templates fill in
    scan_id           uuid NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    website_id        text NOT NULL REFERENCES websites (id),
    listing_url_index bytea NOT NULL,
    status            text NOT NULL DEFAULT 'requested'
                      CHECK (status IN ('requested', 'submitted', 'awaiting_confirmation', 'confirmed', 'removed',
                                        'needs_human', 'reappeared', 'failed')),
    -- 1 + the new requests made after a reappearance or a failed verification (REMOVAL_MAX_ATTEMPTS)
    attempt           integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- the flow step to run next (0-based index into opt_out.steps)
    step              integer NOT NULL DEFAULT 0 CHECK (step >= 0),
    -- sha256 of the opt-out flow the request runs (a changed flow restarts at step 0)
    flow_sha256       text,
    -- random token: the plus-tag of the address the broker is given, and the reference in letters
    reference         text NOT NULL UNIQUE,
    -- exactly once: 'sending' is committed before the submission leaves, 'sent' after its answer;
    -- a request found 'sending' after a crash has an unknown outcome and is never re-submitted blindly
    submission        text NOT NULL DEFAULT 'none' CHECK (submission IN ('none', 'sending', 'sent', 'unknown')),
    submission_step   integer,
    -- when the optout crawl should look at the request again (NULL: not before something else happens)
    next_action_at    timestamptz,
    -- failures of the current step in a row (backoff, REMOVAL_STEP_FAILURES)
    failures          integer NOT NULL DEFAULT 0,
    -- why it failed or waits (a reason code and a short text, never personal data)
    reason            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    submitted_at      timestamptz,
    confirmed_at      timestamptz,
    removed_at        timestamptz
);
-- one request per owner and listing, whatever its attempt
CREATE UNIQUE INDEX removal_requests_listing_idx
    ON removal_requests (coalesce(owner, ''), website_id, listing_url_index);
-- the optout crawl's queue: what is due
CREATE INDEX removal_requests_due_idx ON removal_requests (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX removal_requests_owner_idx ON removal_requests (owner, status, id);
CREATE INDEX removal_requests_scan_idx ON removal_requests (scan_id);

-- Every transition, in order: the page's history and the metrics (time to removal, reappearances).
CREATE TABLE removal_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   bigint NOT NULL REFERENCES removal_requests (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text NOT NULL,
    attempt      integer NOT NULL,
    step         integer,
    -- what happened: {"reason": ..., "kind": step kind, "outcome": ...}; never personal data
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX removal_events_request_idx ON removal_events (request_id, id);

-- What a person must do: solve a CAPTCHA, call, upload an ID. Done resumes the flow.
CREATE TABLE removal_tasks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id       bigint NOT NULL REFERENCES removal_requests (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('captcha', 'phone', 'id_upload', 'other')),
    -- from the site definition (no personal data): what to do, and where (the broker's page)
    instructions     text NOT NULL,
    url              text,
    step             integer NOT NULL,
    -- the step the flow goes on with once the task is done (after the submission the person made)
    resume_step      integer NOT NULL,
    -- the person made the submission themselves (a CAPTCHA-gated form)
    submitted_by_person boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    done_by          text
);
-- one open task per request
CREATE UNIQUE INDEX removal_tasks_open_idx ON removal_tasks (request_id) WHERE done_at IS NULL;

-- "Is this you?": candidates the matcher scored in the review band (MATCH_REVIEW_THRESHOLD up to
-- MATCH_THRESHOLD) keep their extracted listing, encrypted, until the person answers.
ALTER TABLE rejected_candidates
    ADD COLUMN review_ciphertext bytea;

-- The person's answer, per owner and listing: asked once, never again.
CREATE TABLE listing_reviews (
    owner             text NOT NULL DEFAULT '',
    website_id        text NOT NULL REFERENCES websites (id),
    listing_url_index bytea NOT NULL,
    decision          text NOT NULL CHECK (decision IN ('yes', 'no')),
    decided_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, website_id, listing_url_index)
);
