-- The change feed's transactional outbox (docs/feed.md). Every statement that creates, changes
-- or deletes a CRM record notes the record's type and id here, in the same transaction, so the
-- feed and the database cannot disagree: a rolled-back batch leaves no row, a committed one
-- always does. The relay (`mailroom run feed`) publishes each noted record's state as of its
-- read to the compacted topic mailroom.records, then marks the rows published.
--
-- A row names the record, not its content: the relay reads the current state when it
-- publishes, so an email activity's parties, mailboxes and attachments (their own tables) go
-- out with it, a record changed ten times before the relay came round is sent once, and a
-- record deleted meanwhile becomes a tombstone.
CREATE TABLE record_outbox (
    seq          bigserial   PRIMARY KEY,
    record_type  text        NOT NULL,
    record_id    text        NOT NULL,
    writer       text        NOT NULL DEFAULT '',  -- mailroom.writer of the transaction
    noted_at     timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
-- The relay reads only what is left to publish; published rows are pruned after a while.
CREATE INDEX record_outbox_unpublished ON record_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX record_outbox_published ON record_outbox (published_at) WHERE published_at IS NOT NULL;

-- One statement-level trigger per table and operation: a statement writing 500 party rows
-- notes each activity once, and a statement that changed nothing (ON CONFLICT DO NOTHING)
-- notes nothing. Arguments: the record type, the SQL expression of the record's id over the
-- changed rows, and an optional filter.
--
-- SECURITY DEFINER, its search_path fixed to this schema: whoever changes a record (persist's
-- role, a CRM user, an import) notes it without a grant on the outbox, and always in the outbox
-- of the records' own schema.
CREATE FUNCTION mailroom_note_record_change() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
    rows_name text := CASE WHEN TG_OP = 'DELETE' THEN 'old_rows' ELSE 'new_rows' END;
    filter    text := coalesce(nullif(TG_ARGV[2], ''), 'true');
BEGIN
    EXECUTE format(
        'INSERT INTO record_outbox (record_type, record_id, writer) '
        'SELECT DISTINCT %L, (%s)::text, %L FROM %I WHERE %s',
        TG_ARGV[0], TG_ARGV[1], coalesce(current_setting('mailroom.writer', true), ''),
        rows_name, filter);
    RETURN NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mailroom_note_record_change() SET search_path = %I',
                   current_schema());
END $$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('email_activities',           'email_activity', 'id',          ''),
        ('activity_mailboxes',         'email_activity', 'activity_id', ''),
        ('activity_parties',           'email_activity', 'activity_id', ''),
        ('activity_attachments',       'email_activity', 'activity_id', ''),
        ('activity_delivery_failures', 'email_activity', 'activity_id', ''),
        ('cases',                      'case',           'id',          ''),
        ('queue_items',                'queue_item',     'queue_id || '':'' || activity_id', ''),
        ('contacts',                   'contact',        'id',          ''),
        ('email_addresses',            'contact',        'record_id',   'record_kind = ''contact''')
    ) AS v (tbl, kind, id_expr, filter)
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION mailroom_note_record_change(%L, %L, %L)',
            t.tbl || '_feed_insert', t.tbl, t.kind, t.id_expr, t.filter);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION mailroom_note_record_change(%L, %L, %L)',
            t.tbl || '_feed_update', t.tbl, t.kind, t.id_expr, t.filter);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION mailroom_note_record_change(%L, %L, %L)',
            t.tbl || '_feed_delete', t.tbl, t.kind, t.id_expr, t.filter);
    END LOOP;
END $$;

-- Least privilege (0051): the relay runs with persist's role — it reads the records persist
-- writes and owns the outbox's bookkeeping.
DO $$
DECLARE
    prefix text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom');
BEGIN
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON TABLE %I.record_outbox TO %I',
                   current_schema(), prefix || '_persist');
END $$;
