-- `mailroom mailbox backfill ADDRESS --since DATE` (docs/ingest.md, "Backfilling a mailbox"):
-- its own checkpoint per mailbox, folder and start date, apart from the live one
-- (ingest_checkpoints), which a backfill never moves. last_uid: every UID up to it is on the
-- raw topic (or was already stored); a run killed at any instant resumes after it.
CREATE TABLE ingest_backfills (
    mailbox_id  bigint      NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    folder      text        NOT NULL,
    since       date        NOT NULL,
    uidvalidity bigint      NOT NULL,
    last_uid    bigint      NOT NULL DEFAULT 0,
    -- The folder's UIDs at or below this one are the live checkpoint's; above is live
    -- ingest's (fixed when the folder's backfill starts, so a resumed run covers the same set).
    up_to_uid   bigint      NOT NULL,
    messages    bigint      NOT NULL DEFAULT 0,  -- published so far
    bytes       bigint      NOT NULL DEFAULT 0,
    skipped     bigint      NOT NULL DEFAULT 0,  -- already stored: not published again
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (mailbox_id, folder, since)
);
