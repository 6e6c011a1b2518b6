-- Ingest's durable attempt count per message (ingest/unfetchable.py explains the design): a
-- message the server will not serve is tried alone a few times, then dead-lettered and passed,
-- so no message can stop a mailbox, and a crash while fetching it counts as well.
-- A row exists only while a message is in flight or suspect; it goes when the message is
-- published (IMAP: the checkpoint passed it; POP3: its UIDL was recorded).

CREATE TABLE ingest_fetch_attempts (
    mailbox_id       bigint      NOT NULL REFERENCES ingest_mailboxes (id) ON DELETE CASCADE,
    -- the raw topic key: mailbox/folder/uidvalidity/uid (IMAP) or mailbox/pop3/uidl (POP3)
    identity         text        NOT NULL,
    folder           text        NOT NULL,
    uidvalidity      bigint,
    uid              bigint,
    uidl             text,
    -- fetches of this message alone that started (committed before the fetch, so a crash
    -- counts); 0: it was in a batch that failed or was in flight when a process died
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text        NOT NULL DEFAULT '',
    -- POP3 has no high-water mark: a dead-lettered UIDL stays here so it is never fetched
    -- again (and, unlike a published one, never deleted from the server)
    dead_lettered_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, identity),
    CHECK ((uid IS NOT NULL AND uidvalidity IS NOT NULL) <> (uidl IS NOT NULL))
);

-- The ingest role counts attempts (0051 explains roles; the prefix as there).
DO $$
DECLARE
    r text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom')
              || '_ingest';
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %I.ingest_fetch_attempts TO %I',
                   current_schema(), r);
END $$;
