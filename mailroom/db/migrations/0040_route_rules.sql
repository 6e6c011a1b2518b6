-- Route's configuration: track filters, correlation switches, token format and registry, queue
-- rules and case settings. `mailroom rules load FILE` replaces all of it in one transaction
-- (the file is the whole configuration); the route stage reads it into memory (route/store.py).

-- One row: the settings that are not per owner, scope or queue.
CREATE TABLE route_settings (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    default_filter          text    NOT NULL DEFAULT 'replies'
                                    CHECK (default_filter IN ('all', 'replies', 'known',
                                                              'email_enabled', 'none')),
    token_prefix            text    NOT NULL DEFAULT 'CRM',
    token_separator         text    NOT NULL DEFAULT ':',
    token_digits            integer NOT NULL DEFAULT 7 CHECK (token_digits BETWEEN 4 AND 12),
    -- Tokens issued under these prefixes still correlate after the prefix changed.
    token_former_prefixes   text[]  NOT NULL DEFAULT '{}',
    reopen_window_days      integer NOT NULL DEFAULT 30 CHECK (reopen_window_days >= 0),
    rate_limit_cases        integer NOT NULL DEFAULT 0 CHECK (rate_limit_cases >= 0),
    rate_limit_window_hours integer NOT NULL DEFAULT 24 CHECK (rate_limit_window_hours >= 0),
    max_matches             integer NOT NULL DEFAULT 1 CHECK (max_matches >= 1),
    loaded_at               timestamptz NOT NULL DEFAULT now(),
    loaded_from             text    NOT NULL DEFAULT ''
);
INSERT INTO route_settings DEFAULT VALUES;

-- Track filter and contact policy per mailbox owner ('user:ID' or 'queue:ID').
CREATE TABLE route_track_filters (
    owner           text    PRIMARY KEY CHECK (owner ~ '^(user|queue):.+$'),
    filter          text    CHECK (filter IN ('all', 'replies', 'known', 'email_enabled', 'none')),
    create_contacts boolean NOT NULL DEFAULT false
);
COMMENT ON COLUMN route_track_filters.filter IS 'NULL: route_settings.default_filter applies.';

-- Correlation switches: scope '*' is the default; 'mailbox:ID', 'queue:ID', 'user:ID' override
-- it (a mailbox's own row beats its owner's).
CREATE TABLE route_correlation (
    scope                  text    PRIMARY KEY CHECK (scope = '*' OR scope ~ '^(mailbox|queue|user):.+$'),
    in_reply_to            boolean NOT NULL DEFAULT true,
    token                  boolean NOT NULL DEFAULT true,
    "references"           boolean NOT NULL DEFAULT true,
    thread_index           boolean NOT NULL DEFAULT true,
    smart                  boolean NOT NULL DEFAULT false,
    smart_min_participants integer NOT NULL DEFAULT 2 CHECK (smart_min_participants >= 1),
    smart_lookback_days    integer NOT NULL DEFAULT 30 CHECK (smart_lookback_days >= 0)
);
INSERT INTO route_correlation (scope) VALUES ('*');

-- Queue rule items, in order: the first item whose conditions all hold fires.
CREATE TABLE route_queue_rules (
    queue_id          text    NOT NULL REFERENCES queues (id),
    position          integer NOT NULL CHECK (position >= 0),
    name              text    NOT NULL,
    sender            text    NOT NULL DEFAULT 'any' CHECK (sender IN ('any', 'known', 'unknown')),
    subject_pattern   text,   -- case-insensitive Python regular expression, searched
    body_pattern      text,
    recipient         text    CHECK (recipient = lower(btrim(recipient))),
    create_case       boolean NOT NULL DEFAULT true,
    create_queue_item boolean NOT NULL DEFAULT true,
    PRIMARY KEY (queue_id, position),
    CHECK (create_case OR create_queue_item)
);

-- The token registry: `mailroom token new --regarding KIND:ID` takes the next number. The
-- number alone identifies a token (prefixes may change); persist resolves `token` candidates
-- here. activity_dedupe_key: the outgoing email that carried the token, once it is tracked.
CREATE SEQUENCE route_token_numbers START 1000;
CREATE TABLE route_tokens (
    number              bigint      PRIMARY KEY DEFAULT nextval('route_token_numbers'),
    regarding_kind      text        NOT NULL
                                    CHECK (regarding_kind IN ('case', 'contact', 'account',
                                                              'lead', 'user', 'queue')),
    regarding_id        text        NOT NULL CHECK (regarding_id <> ''),
    activity_dedupe_key text,
    issued_at           timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE route_token_numbers OWNED BY route_tokens.number;
CREATE INDEX route_tokens_regarding ON route_tokens (regarding_kind, regarding_id);
