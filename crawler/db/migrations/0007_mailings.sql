-- 0007: the CSV mailing job (`scrapy crawl mailing -a csv=PATH`, spiders/mailing.py). One mailing
-- per file CONTENT (sha256 of its bytes: the same file under another name or path continues the
-- same mailing), one row per CSV record with its state. Exactly once per valid address: a row is
-- 'sending' (committed) before its request leaves; a row still 'sending' when a later run starts
-- may have reached the provider, so it becomes 'unknown' and is reported, never re-sent blindly.
-- No plaintext personal data: addresses and tokens are AES-GCM ciphertexts (crawler.security),
-- equality is an HMAC of the address with its domain lower-cased (the local part keeps its case).

CREATE TABLE mailings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the file's identity: sha256 of its bytes (not its path)
    file_sha256    text NOT NULL UNIQUE,
    -- what the CSV held: records (the header included), the header row (0 = none), the address column
    rows_total     integer NOT NULL,
    header         boolean NOT NULL,
    address_column integer NOT NULL,
    encoding       text NOT NULL,
    -- the message every recipient gets; {token} in the body is the row's own token. A template, not
    -- personal data; a later run of the file with another subject/body is refused.
    subject        text NOT NULL,
    body_template  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- set when a run ends with nothing left to send
    finished_at    timestamptz
);

CREATE TABLE mailing_rows (
    -- a single-column key for key rotation (crawler/security/rotate.py re-encrypts row by row)
    id                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    mailing_id         bigint NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    -- the record's number in the file, 1-based, the header row included (what a spreadsheet shows)
    row_number         integer NOT NULL CHECK (row_number >= 1),
    -- valid rows only (invalid ones keep no address): ciphertexts bound to (mailing, row)
    address_ciphertext bytea,
    -- HMAC of the canonical address (local part as written, domain lower-cased)
    address_index      bytea,
    token_ciphertext   bytea,
    key_id             text,
    state              text NOT NULL
                       CHECK (state IN ('queued', 'claimed', 'sending', 'sent', 'unknown', 'invalid')),
    -- the provider's message id once sent
    message_id         text,
    -- why a row is invalid or unknown, or why the last try failed: a code and a short text, never a value
    reason             text,
    -- sends that left for this row (more than 1 only with MAILING_RESEND_UNKNOWN)
    attempts           integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    sending_at         timestamptz,
    sent_at            timestamptz,
    PRIMARY KEY (mailing_id, row_number),
    -- every row that may be sent has its address; invalid ones (file or provider) may lack it
    CHECK (state = 'invalid' OR (address_index IS NOT NULL AND address_ciphertext IS NOT NULL))
);
-- one row per address within a mailing (duplicates in the file are 'invalid' with no index)
CREATE UNIQUE INDEX mailing_rows_address_idx ON mailing_rows (mailing_id, address_index);
-- the sender's queue and the summaries
CREATE INDEX mailing_rows_state_idx ON mailing_rows (mailing_id, state, row_number);
