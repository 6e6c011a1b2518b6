-- A database role per stage, each with exactly the privileges its process needs
-- (docs/persist.md, "Least privilege").
--
-- Roles are cluster-wide, grants are per schema. This migration creates the NOLOGIN group roles
-- <prefix>_ingest, <prefix>_unwrap, <prefix>_route and <prefix>_persist when they do not exist
-- yet (several schemas — a deployment's, each test's — share them), and grants them privileges
-- on the tables of the schema being migrated (current_schema()) only. <prefix> is the session
-- setting mailroom.role_prefix, which `mailroom db migrate` sets from
-- MAILROOM_DATABASE_ROLE_PREFIX; unset, it is 'mailroom'. Login users are the DBA's: one per
-- process kind, member of its group (docs/persist.md shows the statements). A later migration
-- that adds a table grants on it in the same way.

CREATE OR REPLACE FUNCTION pg_temp.mailroom_role(stage text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
BEGIN
    IF prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'mailroom.role_prefix %: use lower-case letters, digits and _', prefix;
    END IF;
    RETURN prefix || '_' || stage;
END $$;

-- GRANT privileges ON each table (of the current schema) TO the stage's role.
CREATE OR REPLACE FUNCTION pg_temp.mailroom_grant(stage text, privileges text, tables text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('GRANT %s ON TABLE %I.%I TO %I',
                       privileges, current_schema(), t, pg_temp.mailroom_role(stage));
    END LOOP;
END $$;

-- USAGE on sequences by name, and on the serial/identity sequences of the tables it inserts into.
CREATE OR REPLACE FUNCTION pg_temp.mailroom_grant_sequences(stage text, names text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOR s IN
        SELECT seq.relname FROM pg_class seq
          JOIN pg_namespace n ON n.oid = seq.relnamespace AND n.nspname = current_schema()
         WHERE seq.relkind = 'S' AND (seq.relname = ANY(names) OR EXISTS (
               SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                WHERE d.objid = seq.oid AND d.deptype IN ('a', 'i') AND t.relname = ANY(names)))
    LOOP
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I',
                       current_schema(), s, pg_temp.mailroom_role(stage));
    END LOOP;
END $$;

DO $$
DECLARE
    stage text;
    r text;
BEGIN
    FOREACH stage IN ARRAY ARRAY['ingest', 'unwrap', 'route', 'persist'] LOOP
        r := pg_temp.mailroom_role(stage);
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                -- another schema's migration created it a moment ago
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role % does not exist and % may not create it', r, current_user
                        USING HINT = 'a DBA runs: CREATE ROLE ' || r || ' NOLOGIN; then migrate again';
            END;
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), r);
    END LOOP;
END $$;

-- Shared by the stream stages' runner: the durable attempt counter (unwrap, route).
SELECT pg_temp.mailroom_grant(s, 'SELECT, INSERT, UPDATE', ARRAY['stage_attempts'])
  FROM unnest(ARRAY['unwrap', 'route']) AS s;

-- ingest: its checkpoints, the mailboxes' status and ownership fence, claim-checked blobs.
SELECT pg_temp.mailroom_grant('ingest', 'SELECT', ARRAY[
    'ingest_profiles', 'ingest_mailboxes', 'ingest_folders']);
SELECT pg_temp.mailroom_grant('ingest', 'SELECT, INSERT, UPDATE, DELETE', ARRAY[
    'ingest_checkpoints', 'ingest_pending_actions', 'ingest_pop3_uidls']);
SELECT pg_temp.mailroom_grant('ingest',
    'UPDATE (status, status_detail, status_at, failures, next_attempt_at, enabled, '
    'disabled_kind, owner_generation, updated_at)', ARRAY['ingest_mailboxes']);
SELECT pg_temp.mailroom_grant('ingest', 'SELECT, INSERT, UPDATE', ARRAY['blobs', 'blob_chunks']);
SELECT pg_temp.mailroom_grant_sequences('ingest', ARRAY[
    'ingest_generation_seq', 'ingest_checkpoints', 'ingest_pending_actions', 'ingest_pop3_uidls']);

-- unwrap: blobs (claim checks in and out); forwarders from the mailboxes — never the secrets.
SELECT pg_temp.mailroom_grant('unwrap', 'SELECT, INSERT, UPDATE', ARRAY['blobs', 'blob_chunks']);
SELECT pg_temp.mailroom_grant('unwrap',
    'SELECT (id, address, owner_kind, owner_id, via_mailbox_id, enabled, approved)',
    ARRAY['ingest_mailboxes']);
SELECT pg_temp.mailroom_grant('unwrap', 'SELECT', ARRAY['email_addresses']);

-- route: reads only (reference records, rules, the mailboxes' owners; its dead letters fit in
-- the topic because unwrap already claim-checked its input, so no blob writes).
SELECT pg_temp.mailroom_grant('route', 'SELECT', ARRAY[
    'users', 'queues', 'accounts', 'contacts', 'leads', 'email_addresses', 'route_settings',
    'route_track_filters', 'route_correlation', 'route_queue_rules']);
SELECT pg_temp.mailroom_grant('route', 'SELECT (id, address, owner_kind, owner_id)',
    ARRAY['ingest_mailboxes']);

-- persist: the records, its bookkeeping, the contacts it creates for unknown senders, the
-- token a reply resolved, blobs for oversized dead letters.
SELECT pg_temp.mailroom_grant('persist', 'SELECT, INSERT, UPDATE, DELETE', ARRAY[
    'email_activities', 'activity_mailboxes', 'activity_parties', 'attachment_contents',
    'activity_attachments', 'activity_delivery_failures', 'email_collisions', 'cases',
    'queue_items', 'persist_created_contacts', 'persist_pending_plans', 'persist_watches',
    'message_traces', 'persist_offsets']);
SELECT pg_temp.mailroom_grant('persist', 'SELECT', ARRAY[
    'users', 'queues', 'accounts', 'contacts', 'leads', 'email_addresses', 'route_tokens']);
SELECT pg_temp.mailroom_grant('persist', 'INSERT', ARRAY['contacts', 'email_addresses']);
SELECT pg_temp.mailroom_grant('persist', 'UPDATE (activity_dedupe_key)', ARRAY['route_tokens']);
SELECT pg_temp.mailroom_grant('persist', 'SELECT, INSERT, UPDATE', ARRAY['blobs', 'blob_chunks']);
SELECT pg_temp.mailroom_grant_sequences('persist', ARRAY[
    'case_numbers', 'persist_fence_tokens', 'email_activities', 'activity_mailboxes',
    'activity_parties', 'attachment_contents', 'activity_attachments',
    'activity_delivery_failures', 'email_collisions', 'cases', 'message_traces',
    'persist_pending_plans', 'persist_watches', 'email_addresses']);

DROP FUNCTION pg_temp.mailroom_grant_sequences(text, text[]);
DROP FUNCTION pg_temp.mailroom_grant(text, text, text[]);
DROP FUNCTION pg_temp.mailroom_role(text);
