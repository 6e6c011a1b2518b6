-- Mailbox approval (docs/forwarding.md, "Approval"): who last approved or rejected a mailbox's
-- address, and when. `approved` (0020) stays the gate ingest and unwrap read; a mailbox that is
-- not approved and has no decision yet is pending, one with a decision is rejected. Mailboxes
-- that exist already keep working: they stay approved, by nobody recorded.
ALTER TABLE ingest_mailboxes
    ADD COLUMN approval_by text NOT NULL DEFAULT '',
    ADD COLUMN approval_at timestamptz;

-- Least privilege (0051, 0065): unwrap tells a pending forwarder from a rejected one; the
-- dashboard's Approve and Reject buttons record the decision (when its role exists).
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
BEGIN
    EXECUTE format('GRANT SELECT (approval_by, approval_at) ON TABLE %I.ingest_mailboxes TO %I',
                   current_schema(), prefix || '_unwrap');
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = prefix || '_web') THEN
        EXECUTE format('GRANT UPDATE (approved, approval_by, approval_at, updated_at) '
                       'ON TABLE %I.ingest_mailboxes TO %I', current_schema(), prefix || '_web');
    END IF;
END $$;
