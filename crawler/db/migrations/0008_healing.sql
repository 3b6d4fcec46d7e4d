-- Self-healing extraction (crawler/healing): the selector memory and the versions of site definitions.

-- What each field's nodes looked like while extraction worked: structure, labels and value shapes,
-- never values (crawler/healing/memory.py); pages/hits: how often the field had values.
CREATE TABLE heal_memory (
    site       text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('list', 'detail')),
    field      text NOT NULL,
    memory     jsonb NOT NULL,
    pages      bigint NOT NULL DEFAULT 0,
    hits       bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, kind, field)
);

-- Every version of a site definition a heal (or a person) made: its parent, where it came from, how sure,
-- on how many pages it was verified. Active versions are used by every worker at once; quarantined ones
-- hold the listings read under them until a person accepts (crawler/healing/versions.py).
CREATE TABLE site_definition_versions (
    id            bigserial PRIMARY KEY,
    site          text NOT NULL,
    sha256        text NOT NULL,
    parent_sha256 text NOT NULL,
    base_sha256   text NOT NULL,           -- the YAML's sha256 this version descends from
    origin        text NOT NULL CHECK (origin IN ('yaml', 'heuristic', 'llm', 'human')),
    status        text NOT NULL CHECK (status IN ('active', 'quarantined', 'rejected', 'superseded')),
    confidence    real NOT NULL,
    definition    jsonb NOT NULL,
    changes       jsonb NOT NULL,          -- {kind.field: {"old": spec, "new": spec, "score", "margin"}}
    verified_on   jsonb NOT NULL,          -- [{"kind", "pages", "structure": page structure hashes}]: no URLs
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    decided_by    text,
    UNIQUE (site, sha256)
);
CREATE INDEX site_definition_versions_current ON site_definition_versions (site, base_sha256, created_at DESC);

-- Findings read under a quarantined version (definition_sha256 names it): not findings until a person
-- accepts the version (then moved into findings), deleted if it is rejected.
CREATE TABLE held_findings (LIKE findings INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING IDENTITY);
ALTER TABLE held_findings ADD FOREIGN KEY (scan_id) REFERENCES scans (id) ON DELETE CASCADE;
CREATE INDEX held_findings_version_idx ON held_findings (website_id, definition_sha256);
