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
-- notes nothing. A function per table with static SQL, so PostgreSQL plans its INSERT once per
-- session (one generic function building its statement with EXECUTE cost persist's backend
-- more; docs/feed.md has the figures).
--
-- SECURITY DEFINER, its search_path fixed to this schema: whoever changes a record (persist's
-- role, a CRM user, an import) notes it without a grant on the outbox, and always in the outbox
-- of the records' own schema.
DO $$
DECLARE
    t record;
    fn text;
    note text := 'INSERT INTO record_outbox (record_type, record_id, writer) '
                 'SELECT DISTINCT %L, (%s)::text, '
                 'coalesce(current_setting(''mailroom.writer'', true), '''') FROM %s WHERE %s';
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('email_activities',           'email_activity', 'id',          'true'),
        ('activity_mailboxes',         'email_activity', 'activity_id', 'true'),
        ('activity_parties',           'email_activity', 'activity_id', 'true'),
        ('activity_attachments',       'email_activity', 'activity_id', 'true'),
        ('activity_delivery_failures', 'email_activity', 'activity_id', 'true'),
        ('cases',                      'case',           'id',          'true'),
        ('queue_items',                'queue_item',     'queue_id || '':'' || activity_id', 'true'),
        ('contacts',                   'contact',        'id',          'true'),
        ('email_addresses',            'contact',        'record_id',   'record_kind = ''contact''')
    ) AS v (tbl, kind, id_expr, filter)
    LOOP
        fn := 'mailroom_feed_' || t.tbl;
        EXECUTE format(
            'CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
            'SET search_path = %I AS $f$ BEGIN '
            'IF TG_OP = ''DELETE'' THEN %s; ELSE %s; END IF; '
            'RETURN NULL; END $f$',
            fn, current_schema(),
            format(note, t.kind, t.id_expr, 'old_rows', t.filter),
            format(note, t.kind, t.id_expr, 'new_rows', t.filter));
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_feed_insert', t.tbl, fn);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_feed_update', t.tbl, fn);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_feed_delete', t.tbl, fn);
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
