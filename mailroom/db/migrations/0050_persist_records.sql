-- The CRM records mail creates (persist stage; docs/persist.md). Natural keys make every write
-- an idempotent upsert, so a replay of mailroom.actions converges on the same rows.
--
-- User edits and deletions: a CRM user's change is made with mailroom.writer unset (anything
-- but 'persist'); the triggers below stamp user_edited_at, and a delete is a tombstone
-- (deleted_at), never a DELETE, so a replay finds the row and leaves it alone.

-- One row per original email (dedupe key). A copy whose content hash differs from the first
-- stored one is a collision: its own row, flagged, never merged into the real one.
CREATE TABLE email_activities (
    id                 bigserial   PRIMARY KEY,
    dedupe_key         text        NOT NULL CHECK (dedupe_key <> ''),
    content_hash       text        NOT NULL,
    collision          boolean     NOT NULL DEFAULT false,
    message_id         text,
    direction          text        NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    subject            text        NOT NULL DEFAULT '',
    text_body          text,
    html_body          text,
    sent_at            timestamptz,
    -- The earliest broker timestamp of any copy's plan: replays read the same timestamps.
    received_at        timestamptz,
    -- Which copy supplied the content (copy precedence: lower rank is richer).
    copy_kind          text        NOT NULL,
    copy_rank          smallint    NOT NULL,
    delivery_path      text        NOT NULL DEFAULT '',
    -- Correlation inputs later emails are matched against (docs/plans.md).
    sender             text        NOT NULL DEFAULT '',
    thread_root        text        NOT NULL DEFAULT '',
    subject_hash       text        NOT NULL DEFAULT '',
    participants       text[]      NOT NULL DEFAULT '{}',
    customer           text        NOT NULL DEFAULT '',
    automated          text        NOT NULL DEFAULT '',
    case_rule          text        NOT NULL DEFAULT '',
    -- Correlation outcome: the first candidate (rank = its position) that resolved.
    parent_id          bigint      REFERENCES email_activities (id) ON DELETE SET NULL,
    correlation_method text        NOT NULL DEFAULT '',
    correlation_rank   integer,
    regarding          text        NOT NULL DEFAULT '',  -- 'kind:id' or ''
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    user_edited_at     timestamptz,
    deleted_at         timestamptz,
    UNIQUE (dedupe_key, content_hash)
);
-- The real email of a dedupe key is the first stored; only collisions may share the key.
CREATE UNIQUE INDEX email_activities_one_real ON email_activities (dedupe_key) WHERE NOT collision;
CREATE INDEX email_activities_message_id ON email_activities (message_id) WHERE NOT collision;
CREATE INDEX email_activities_thread ON email_activities (thread_root, sent_at) WHERE thread_root <> '';
CREATE INDEX email_activities_smart ON email_activities (subject_hash, customer, sent_at)
    WHERE subject_hash <> '';
CREATE INDEX email_activities_case_rule ON email_activities (sender, sent_at) WHERE case_rule <> '';

-- Every mailbox a copy was received in (one email delivered to three mailboxes: three rows).
CREATE TABLE activity_mailboxes (
    activity_id     bigint NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    mailbox_id      text   NOT NULL,
    accepting_owner text   NOT NULL DEFAULT '',
    copy_kind       text   NOT NULL,
    delivery_path   text   NOT NULL DEFAULT '',
    forwarded_by    text   NOT NULL DEFAULT '',
    PRIMARY KEY (activity_id, mailbox_id)
);

CREATE TABLE activity_parties (
    activity_id bigint NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    role        text   NOT NULL CHECK (role IN ('from', 'to', 'cc', 'bcc')),
    address     text   NOT NULL,
    record      text   NOT NULL DEFAULT '',  -- 'kind:id', '' when unresolved
    name        text   NOT NULL DEFAULT '',
    outcome     text   NOT NULL DEFAULT '',
    detail      text   NOT NULL DEFAULT '',
    PRIMARY KEY (activity_id, role, address, record)
);
CREATE INDEX activity_parties_record ON activity_parties (record) WHERE record <> '';

-- Attachment content, stored once per sha256 however many emails carry it: small content
-- inline here, large content by reference into the blob store (0003).
CREATE TABLE attachment_contents (
    sha256   text   PRIMARY KEY,
    size     bigint NOT NULL CHECK (size >= 0),
    content  bytea,
    blob_ref text,
    CHECK (content IS NULL OR blob_ref IS NULL)
);

CREATE TABLE activity_attachments (
    activity_id  bigint  NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    sha256       text    REFERENCES attachment_contents (sha256),
    name         text    NOT NULL DEFAULT '',
    content_type text    NOT NULL DEFAULT '',
    size         bigint  NOT NULL DEFAULT 0,
    content_id   text,
    inline       boolean NOT NULL DEFAULT false,
    omitted      text,   -- why no content is stored (e.g. over the limit)
    PRIMARY KEY (activity_id, position)
);

-- A bounce marks the original activity's delivery to one recipient failed.
CREATE TABLE activity_delivery_failures (
    activity_id        bigint NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    recipient          text   NOT NULL,
    bounce_activity_id bigint REFERENCES email_activities (id) ON DELETE SET NULL,
    detail             text   NOT NULL DEFAULT '',
    PRIMARY KEY (activity_id, recipient)
);

-- Same dedupe key, different content hash: the forged or broken copy, kept apart.
CREATE TABLE email_collisions (
    dedupe_key       text        NOT NULL,
    content_hash     text        NOT NULL,
    activity_id      bigint      NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    real_activity_id bigint      REFERENCES email_activities (id) ON DELETE SET NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dedupe_key, content_hash)
);

-- Cases: one per originating email (case_key = 'case|<dedupe key>'). Title and customer are
-- written once (first write wins); status changes come from users or a reopen.
CREATE SEQUENCE case_numbers START 1;
CREATE TABLE cases (
    id                     bigserial   PRIMARY KEY,
    case_key               text        NOT NULL UNIQUE,
    number                 text        NOT NULL UNIQUE
                                       DEFAULT 'CAS-' || lpad(nextval('case_numbers')::text, 6, '0'),
    title                  text        NOT NULL,
    customer               text        NOT NULL DEFAULT '',
    queue_id               text        NOT NULL DEFAULT '',
    rule_item              text        NOT NULL DEFAULT '',
    status                 text        NOT NULL DEFAULT 'active'
                                       CHECK (status IN ('active', 'resolved', 'cancelled')),
    resolved_at            timestamptz,
    originating_activity_id bigint     REFERENCES email_activities (id) ON DELETE SET NULL,
    -- Created while an earlier candidate of its email's thread was still awaited: withdrawn
    -- (if no user touched it) when that parent lands and its thread already has a case.
    provisional            boolean     NOT NULL DEFAULT false,
    reopened_count         integer     NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    user_edited_at         timestamptz,
    deleted_at             timestamptz
);

-- One queue item per queue and email.
CREATE TABLE queue_items (
    queue_id    text        NOT NULL,
    activity_id bigint      NOT NULL REFERENCES email_activities (id) ON DELETE CASCADE,
    rule_item   text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (queue_id, activity_id)
);

-- Contacts persist created for unknown senders, by address (the step's natural key).
CREATE TABLE persist_created_contacts (
    address    text        PRIMARY KEY,
    contact_id text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Plans whose answer may change when an email with a watched Message-ID is stored. parked:
-- nothing of the plan is applied yet (its activity step itself waits).
CREATE TABLE persist_pending_plans (
    dedupe_key        text        NOT NULL,
    content_hash      text        NOT NULL,
    receiving_mailbox text        NOT NULL,
    plan              bytea       NOT NULL,  -- the plan's single-object encoding
    received_ms       bigint      NOT NULL,  -- its broker timestamp
    parked            boolean     NOT NULL,
    since             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dedupe_key, content_hash, receiving_mailbox)
);

CREATE TABLE persist_watches (
    message_id        text NOT NULL,
    dedupe_key        text NOT NULL,
    content_hash      text NOT NULL,
    receiving_mailbox text NOT NULL,
    PRIMARY KEY (message_id, dedupe_key, content_hash, receiving_mailbox),
    FOREIGN KEY (dedupe_key, content_hash, receiving_mailbox)
        REFERENCES persist_pending_plans ON DELETE CASCADE
);

-- Every stage's trace events, consumed from mailroom.trace (for `mailroom trace`). Keyed by
-- the trace record's own coordinates, so a redelivery stores nothing twice.
CREATE TABLE message_traces (
    topic            text        NOT NULL,
    topic_partition  integer     NOT NULL,
    topic_offset     bigint      NOT NULL,
    key              text        NOT NULL,
    stage            text        NOT NULL,
    event            text        NOT NULL,
    at               timestamptz NOT NULL,
    message_id       text,
    dedupe_key       text,
    raw_identity     text,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    detail           jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (topic, topic_partition, topic_offset)
);
CREATE INDEX message_traces_key ON message_traces (key, at);
CREATE INDEX message_traces_message_id ON message_traces (message_id, at) WHERE message_id IS NOT NULL;
CREATE INDEX message_traces_dedupe_key ON message_traces (dedupe_key, at) WHERE dedupe_key IS NOT NULL;

-- Persist's consumer offsets, written in the same transaction as the effects. generation is a
-- fence token taken from persist_fence_tokens at every partition assignment: a write carrying
-- an older token than the row's is refused, so a process that lost its partitions cannot move
-- them back. (Kafka's own generation id restarts when a group is deleted; this never does.)
CREATE SEQUENCE persist_fence_tokens;
CREATE TABLE persist_offsets (
    group_id         text        NOT NULL,
    topic            text        NOT NULL,
    partition        integer     NOT NULL CHECK (partition >= 0),
    next_offset      bigint      CHECK (next_offset >= 0),  -- NULL: claimed, nothing stored yet
    generation       bigint      NOT NULL,
    kafka_generation integer     NOT NULL DEFAULT -1,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- User edits: any writer but persist (which sets mailroom.writer = 'persist' in its
-- transactions) stamps user_edited_at, so persist can tell a user's record from its own.
CREATE FUNCTION mailroom_stamp_user_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('mailroom.writer', true), '') <> 'persist' THEN
        NEW.user_edited_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER cases_user_edit BEFORE UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION mailroom_stamp_user_edit();
CREATE TRIGGER email_activities_user_edit BEFORE UPDATE ON email_activities
    FOR EACH ROW EXECUTE FUNCTION mailroom_stamp_user_edit();
