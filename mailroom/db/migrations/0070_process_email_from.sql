-- "Process email from" per mailbox, to the second (docs/forwarding.md): mail that arrived
-- before it is skipped, each skip a trace event with its reason. Empty: the profile's
-- received_after, as before. For a user or queue behind a forward mailbox, unwrap compares it
-- with the original's arrival. POP3 has no high-water mark: a skipped message's UIDL is kept
-- (skipped = true) so it is judged once, and never counted as published (a DELE after ingest
-- applies to published messages only).
ALTER TABLE ingest_mailboxes ADD COLUMN process_from timestamptz;
ALTER TABLE ingest_pop3_uidls ADD COLUMN skipped boolean NOT NULL DEFAULT false;

-- Least privilege (0051): unwrap reads the forwarders' process_from.
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
BEGIN
    EXECUTE format('GRANT SELECT (process_from) ON TABLE %I.ingest_mailboxes TO %I',
                   current_schema(), prefix || '_unwrap');
END $$;
