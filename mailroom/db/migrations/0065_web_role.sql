-- The dashboard's own database role, with only what `mailroom web` needs (docs/web.md,
-- "Database role"), and its login-failure counts shared by every replica.
--
-- Like the stage roles (0051): a NOLOGIN group role <prefix>_web (prefix: the session setting
-- mailroom.role_prefix that `mailroom db migrate` sets, default 'mailroom'), created when it
-- does not exist yet (roles are cluster-wide; several schemas share it), with grants on the
-- tables of the schema being migrated only. The login user is the DBA's, a member of this
-- group only (CREATE ROLE mailroom_web_app LOGIN PASSWORD '…' IN ROLE mailroom_web).
--
-- The dashboard reads what the stages write, and writes only its own tables (sessions,
-- accounts' passwords and enabled flags, audit, stage samples, login failures) and the result
-- of a mailbox *Test*. It never deletes or edits a record, an offset or a checkpoint. Adding
-- accounts stays with the administrative command (`mailroom web user add`). A dashboard page
-- that reads a new table grants SELECT on it in its migration: the web tests run as this
-- role, so a missing grant fails them.

-- Failed logins per account name and per client address (mailroom/web/throttle.py): one row
-- per failure, rows older than the window deleted as new ones arrive. In PostgreSQL so every
-- replica counts the same failures: with N replicas a guesser still gets the limit, not N times.
CREATE TABLE web_login_failures (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('account', 'address')),
    key text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_login_failures_key ON web_login_failures (kind, key, at);
CREATE INDEX web_login_failures_at ON web_login_failures (at);

DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
    r text;
    s text := current_schema();
    t text;
BEGIN
    IF prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'mailroom.role_prefix %: use lower-case letters, digits and _', prefix;
    END IF;
    r := prefix || '_web';
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- another schema's migration
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create it', r, current_user
                    USING HINT = 'a DBA runs: CREATE ROLE ' || r || ' NOLOGIN; then migrate again';
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);

    -- Reads: the pages' sources. ingest_mailboxes whole: the Test button logs in to the mailbox.
    FOREACH t IN ARRAY ARRAY[
        'ingest_profiles', 'ingest_mailboxes', 'ingest_folders', 'ingest_checkpoints',
        'email_activities', 'activity_mailboxes', 'activity_parties', 'cases',
        'message_traces', 'persist_offsets', 'blobs', 'blob_chunks', 'users', 'queues',
        'web_accounts', 'web_sessions', 'web_audit', 'web_stage_samples', 'web_login_failures']
    LOOP
        EXECUTE format('GRANT SELECT ON TABLE %I.%I TO %I', s, t, r);
    END LOOP;

    -- Writes: its own tables, and a mailbox Test's result.
    EXECUTE format('GRANT INSERT, DELETE ON TABLE %I.web_sessions TO %I', s, r);
    EXECUTE format('GRANT UPDATE (password_hash, password_changed_at, enabled) '
                   'ON TABLE %I.web_accounts TO %I', s, r);
    EXECUTE format('GRANT INSERT ON TABLE %I.web_audit TO %I', s, r);
    EXECUTE format('GRANT INSERT, DELETE ON TABLE %I.web_stage_samples TO %I', s, r);
    EXECUTE format('GRANT INSERT, DELETE ON TABLE %I.web_login_failures TO %I', s, r);
    EXECUTE format('GRANT UPDATE (last_test_at, last_test_ok, last_test_detail) '
                   'ON TABLE %I.ingest_mailboxes TO %I', s, r);
    EXECUTE format('GRANT USAGE ON SEQUENCE %I.web_audit_id_seq, %I.web_login_failures_id_seq '
                   'TO %I', s, s, r);
END $$;
