-- Stages own their tables: unwrap and route read the mailbox configuration from the compacted
-- mailboxes topic ingest publishes (the kernel's mailbox directory, docs/architecture.md), no
-- longer from ingest_mailboxes. Their roles lose the column grants they had on it (0021, 0051,
-- 0068, 0070): a table-level REVOKE takes the column privileges with it. unwrap keeps reading
-- email_addresses (the reference records: a forwarder's own addresses).
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY[prefix || '_unwrap', prefix || '_route'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE SELECT ON TABLE %I.ingest_mailboxes FROM %I',
                           current_schema(), r);
        END IF;
    END LOOP;
END $$;
