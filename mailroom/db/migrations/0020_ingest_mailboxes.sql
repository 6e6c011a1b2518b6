-- Ingest's configuration (email server profiles, mailboxes and their folders) and its durable
-- progress (per-folder checkpoints, POP3 UIDLs, server actions still owed after a crash).
-- The truth lives here; the compacted mailboxes topic is derived from these tables.

CREATE TABLE ingest_profiles (
    id              bigserial   PRIMARY KEY,
    name            text        NOT NULL UNIQUE,
    protocol        text        NOT NULL CHECK (protocol IN ('imap', 'pop3')),
    host            text        NOT NULL,
    port            integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls             text        NOT NULL CHECK (tls IN ('implicit', 'starttls', 'none')),
    -- A certificate trusted explicitly for this server (e.g. a self-signed one); '' = system.
    trust_cafile    text        NOT NULL DEFAULT '',
    auth            text        NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'xoauth2')),
    oauth_token_url text        NOT NULL DEFAULT '',
    oauth_client_id text        NOT NULL DEFAULT '',
    oauth_scope     text        NOT NULL DEFAULT '',
    max_connections integer     NOT NULL DEFAULT 4 CHECK (max_connections >= 1),
    poll_interval_s integer     NOT NULL DEFAULT 60 CHECK (poll_interval_s >= 1),
    received_after  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest_mailboxes (
    id               bigserial   PRIMARY KEY,
    address          text        NOT NULL UNIQUE,
    owner_kind       text        NOT NULL CHECK (owner_kind IN ('user', 'queue', 'forward')),
    owner_id         text        NOT NULL DEFAULT '',
    profile_id       bigint      NOT NULL REFERENCES ingest_profiles (id),
    username         text        NOT NULL,
    -- Fernet token (key derived from MAILROOM_SECRET_KEY); never the clear credential.
    secret           bytea       NOT NULL,
    via_mailbox_id   bigint      REFERENCES ingest_mailboxes (id),
    after_ingest     text        NOT NULL DEFAULT 'flag'
                                 CHECK (after_ingest IN ('flag', 'move', 'delete')),
    keyword          text        NOT NULL DEFAULT '$MailroomIngested',
    move_to          text        NOT NULL DEFAULT '',
    enabled          boolean     NOT NULL DEFAULT true,
    approved         boolean     NOT NULL DEFAULT true,
    -- new | ok | retrying | disabled; the detail is the real cause ("authentication refused").
    status           text        NOT NULL DEFAULT 'new',
    status_detail    text        NOT NULL DEFAULT '',
    status_at        timestamptz NOT NULL DEFAULT now(),
    -- 'transient' when disabled by an outage (re-enabled by a successful probe), 'permanent'
    -- when the server refused us (never retried automatically: it would lock the account).
    disabled_kind    text        NOT NULL DEFAULT '' CHECK (disabled_kind IN ('', 'transient', 'permanent')),
    failures         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_test_at     timestamptz,
    last_test_ok     boolean,
    last_test_detail text        NOT NULL DEFAULT '',
    -- Fencing: the generation of the ingest process that owns the mailbox now. Checkpoint
    -- writes are compare-and-set on it, so a process that lost the mailbox cannot move them.
    owner_generation bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest_folders (
    mailbox_id bigint NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    name       text   NOT NULL,
    direction  text   NOT NULL DEFAULT 'incoming' CHECK (direction IN ('incoming', 'outgoing')),
    position   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox_id, name)
);

-- IMAP: everything with a UID <= last_uid (under this uidvalidity) is durably on the raw topic.
CREATE TABLE ingest_checkpoints (
    mailbox_id  bigint      NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    folder      text        NOT NULL,
    uidvalidity bigint      NOT NULL,
    last_uid    bigint      NOT NULL DEFAULT 0,
    resyncs     integer     NOT NULL DEFAULT 0,
    -- backlog, as last seen: messages on the server above last_uid and the oldest one's date
    backlog          integer,
    backlog_oldest   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder)
);

-- Server actions owed for messages the broker already has (flag, move or delete): written in
-- the checkpoint's transaction, deleted once done, finished first after a crash.
CREATE TABLE ingest_pending_actions (
    mailbox_id  bigint      NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    folder      text        NOT NULL,
    uidvalidity bigint      NOT NULL,
    uid         bigint      NOT NULL,
    action      text        NOT NULL CHECK (action IN ('flag', 'move', 'delete')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder, uidvalidity, uid)
);

-- POP3: the set of UIDLs already published (not a high-water mark: UIDLs have no order).
CREATE TABLE ingest_pop3_uidls (
    mailbox_id   bigint      NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    uidl         text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, uidl)
);

-- Fence tokens for ingest processes that are not (yet) in a consumer group: each start takes
-- a new, higher one, so a newer process fences an older one out of its mailboxes.
CREATE SEQUENCE ingest_generation_seq;
