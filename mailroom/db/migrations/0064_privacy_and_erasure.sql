-- Privacy exclusions and erasure (docs/privacy.md). Numbered after the stage roles (0051), whose
-- grants it extends.

-- Erasure that no replay undoes (`mailroom erase`, docs/privacy.md).
--
-- erasures: the audit record of each executed erasure — what kind of selector, its digest, who
-- asked, when, and what was removed as counts and row ids. Never the content, nor the address
-- or Message-ID itself (only its digest).
--
-- erasure_list: the digests every stage consults so that mail still held by mailroom.raw (and
-- by the later topics, for their retention) never becomes a record again after a replay or a
-- dead-letter retry. A digest is sha256('id:' || identifier) for a Message-ID, dedupe key or
-- raw identity, and sha256('address:' || lower-cased address) for an address
-- (mailroom/erasure.py). Route reads the whole list into its snapshot; persist looks up only the
-- digests of the batch in hand, under a shared advisory lock that `mailroom erase` takes
-- exclusively, so no batch that began before an erasure commits after it.
CREATE TABLE erasures (
    id              bigserial   PRIMARY KEY,
    selector_kind   text        NOT NULL CHECK (selector_kind IN ('message_id', 'address')),
    selector_digest text        NOT NULL CHECK (selector_digest ~ '^[0-9a-f]{64}$'),
    requested_by    text        NOT NULL DEFAULT '',
    erased_at       timestamptz NOT NULL DEFAULT now(),
    -- Rows removed per table, e.g. {"email_activities": 2, "message_traces": 11}.
    counts          jsonb       NOT NULL DEFAULT '{}',
    activity_ids    bigint[]    NOT NULL DEFAULT '{}',
    case_ids        bigint[]    NOT NULL DEFAULT '{}',
    contact_ids     text[]      NOT NULL DEFAULT '{}',
    blob_refs       text[]      NOT NULL DEFAULT '{}'
);

CREATE TABLE erasure_list (
    digest     text        PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    kind       text        NOT NULL CHECK (kind IN ('id', 'address')),
    erasure_id bigint      NOT NULL REFERENCES erasures (id),
    added_at   timestamptz NOT NULL DEFAULT now()
);

-- Privacy exclusions (docs/privacy.md): mail with an address or domain on a never-track list is
-- skipped by route before anything of its content reaches a plan, a record or a trace.
--
-- scope: 'organisation' (everyone's mail), 'user:ID' or 'queue:ID' (mail of that owner's
-- mailboxes, and for a forward mailbox the copies that user forwarded).
CREATE TABLE privacy_exclusions (
    id         bigserial   PRIMARY KEY,
    scope      text        NOT NULL CHECK (scope = 'organisation' OR scope ~ '^(user|queue):.+$'),
    kind       text        NOT NULL CHECK (kind IN ('address', 'domain')),
    -- Lower-cased and trimmed; a domain also covers its subdomains.
    value      text        NOT NULL CHECK (value = lower(btrim(value)) AND value <> ''),
    note       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, kind, value)
);

-- One row: organisation-wide privacy settings.
CREATE TABLE privacy_settings (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Mail marked `Sensitivity: Private` or `Confidential` (also `Company-Confidential`) is
    -- never tracked unless this is turned off.
    honour_sensitivity boolean NOT NULL DEFAULT true
);
INSERT INTO privacy_settings DEFAULT VALUES;

-- Least privilege (0051): route reads the lists into its snapshot; persist looks up the erasure
-- list per batch. Only the operator's commands write them.
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
BEGIN
    EXECUTE format('GRANT SELECT ON TABLE %I.privacy_exclusions, %I.privacy_settings, '
                   '%I.erasure_list TO %I', current_schema(), current_schema(),
                   current_schema(), prefix || '_route');
    EXECUTE format('GRANT SELECT ON TABLE %I.erasure_list TO %I', current_schema(),
                   prefix || '_persist');
END $$;
