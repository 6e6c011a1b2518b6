-- Whether a forward mailbox's forwards must carry a passing Authentication-Results header of our
-- receiving server (docs/security.md). True for every mailbox unless an operator switches it off
-- for one forward mailbox whose receiving server cannot stamp results
-- (`mailroom mailbox auth-results ADDRESS off`); then its forwarders are believed on their From
-- address alone. Meaningless for user and queue mailboxes, which carry no forwards.

ALTER TABLE ingest_mailboxes ADD COLUMN check_auth_results boolean NOT NULL DEFAULT true;

-- unwrap reads the flag with the forwarders. Its role has column grants on ingest_mailboxes
-- (0051), which do not cover a new column. On a fresh database this file runs before 0051, so
-- the role is created here when missing, exactly as 0051 does (the prefix as there); 0051 then
-- adds its own grants to it.
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
    r text;
BEGIN
    IF prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'mailroom.role_prefix %: use lower-case letters, digits and _', prefix;
    END IF;
    r := prefix || '_unwrap';
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create it', r, current_user
                    USING HINT = 'a DBA runs: CREATE ROLE ' || r || ' NOLOGIN; then migrate again';
        END;
    END IF;
    EXECUTE format('GRANT SELECT (check_auth_results) ON TABLE %I.ingest_mailboxes TO %I',
                   current_schema(), r);
END $$;
