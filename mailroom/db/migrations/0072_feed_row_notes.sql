-- The change feed's notes, cheaper for what persist does (docs/feed.md, "What it costs"): one
-- note per record and transaction where 0063 wrote one per statement, and a trigger call only
-- for a row that changed.
--
-- Persist writes one row per statement on the record tables (an activity, its case, its queue
-- item), then updates rows it has just inserted in the same transaction (an activity's
-- regarding and correlation). With 0063's statement-level triggers each of those statements
-- cost persist's backend a trigger call with a transition table and an outbox INSERT … SELECT
-- DISTINCT; the updates noted a record its insert had already noted (the relay reads the state
-- after commit, which includes them), and a statement that changed no row (`... WHERE
-- regarding <> %s`, an `ON CONFLICT DO NOTHING` on a replay) ran the outbox INSERT all the same.
--
-- UPDATE, on every table 0063 watches: row-level, with a WHEN clause — an expression the
-- executor evaluates without calling a function — that lets a row through only when the row's
-- previous version was not written by the same (sub)transaction as this update (OLD.xmin <>
-- NEW.xmin), or when the update moves the row to another record (its record key changes). Why
-- skipping the rest loses nothing: the previous version, written by this very subtransaction,
-- was noted when it was written (by an INSERT trigger, or by this one for the version before
-- it), and that note is in the same subtransaction — it commits, or rolls back, together with
-- the change. A CRM user's UPDATE in a transaction of its own always meets a version an
-- earlier transaction wrote, so it is always noted. A version written inside a savepoint and
-- updated after the savepoint was released is noted again (harmless: the relay sends a record
-- once per round).
--
-- A row moved to another record (a queue item to another queue, an address to another
-- contact) now also notes the record it left, so the feed sends that record's new state, or a
-- tombstone where nothing is left under its key (0063 noted only the record it joined).
--
-- INSERT on the record tables themselves (email_activities, cases, queue_items, contacts):
-- row-level, a plain INSERT … VALUES (no transition table, no DISTINCT: each row is its own
-- record). Their writers — persist, the reference import, a CRM user — insert one row per
-- statement. The child tables (mailboxes, parties, attachments, delivery failures, addresses)
-- keep 0063's statement-level INSERT triggers: persist writes them many rows per statement.
-- DELETE stays statement-level everywhere.
--
-- Row-level costs a bulk statement a trigger call per row (~15 µs) where 0063 paid one per
-- statement: an UPDATE of 10,000 activities, or an INSERT … SELECT of 10,000 contacts, takes
-- ~0.15 s more.
--
-- The functions are SECURITY DEFINER with their schema's search_path, like 0063's.
DO $$
DECLARE
    t record;
    fn text;
    note text := 'INSERT INTO record_outbox (record_type, record_id, writer) VALUES '
                 '(%L, (%s)::text, coalesce(current_setting(''mailroom.writer'', true), ''''))';
BEGIN
    FOR t IN SELECT * FROM (VALUES
        -- table, record type, the record id of a row r, the row's record key columns, which
        -- rows name a record (0063's filter)
        ('email_activities',           'email_activity', 'r.id',          'r.id',          'true'),
        ('activity_mailboxes',         'email_activity', 'r.activity_id', 'r.activity_id', 'true'),
        ('activity_parties',           'email_activity', 'r.activity_id', 'r.activity_id', 'true'),
        ('activity_attachments',       'email_activity', 'r.activity_id', 'r.activity_id', 'true'),
        ('activity_delivery_failures', 'email_activity', 'r.activity_id', 'r.activity_id', 'true'),
        ('cases',                      'case',           'r.id',          'r.id',          'true'),
        ('queue_items',                'queue_item',     'r.queue_id || '':'' || r.activity_id',
                                                         'r.queue_id, r.activity_id',     'true'),
        ('contacts',                   'contact',        'r.id',          'r.id',          'true'),
        ('email_addresses',            'contact',        'r.record_id',
                                       'r.record_kind, r.record_id', 'r.record_kind = ''contact''')
    ) AS v (tbl, kind, id_expr, key_cols, filter)
    LOOP
        fn := 'mailroom_feed_update_' || t.tbl;
        EXECUTE format('DROP TRIGGER %I ON %I', t.tbl || '_feed_update', t.tbl);
        -- The record the row belongs to now; and the one it belonged to, if that is another.
        EXECUTE format(
            'CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
            'SET search_path = %I AS $f$ BEGIN '
            'IF %s THEN %s; END IF; '
            'IF %s AND (NOT (%s) OR ROW(%s) IS DISTINCT FROM ROW(%s)) THEN %s; END IF; '
            'RETURN NULL; END $f$',
            fn, current_schema(),
            replace(t.filter, 'r.', 'NEW.'),
            format(note, t.kind, replace(t.id_expr, 'r.', 'NEW.')),
            replace(t.filter, 'r.', 'OLD.'), replace(t.filter, 'r.', 'NEW.'),
            replace(t.key_cols, 'r.', 'OLD.'), replace(t.key_cols, 'r.', 'NEW.'),
            format(note, t.kind, replace(t.id_expr, 'r.', 'OLD.')));
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE ON %I FOR EACH ROW '
            'WHEN (OLD.xmin IS DISTINCT FROM NEW.xmin OR ROW(%s) IS DISTINCT FROM ROW(%s)) '
            'EXECUTE FUNCTION %I()',
            t.tbl || '_feed_update', t.tbl,
            replace(t.key_cols, 'r.', 'OLD.'), replace(t.key_cols, 'r.', 'NEW.'), fn);

        CONTINUE WHEN t.tbl NOT IN ('email_activities', 'cases', 'queue_items', 'contacts');
        fn := 'mailroom_feed_insert_' || t.tbl;
        EXECUTE format('DROP TRIGGER %I ON %I', t.tbl || '_feed_insert', t.tbl);
        EXECUTE format(
            'CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
            'SET search_path = %I AS $f$ BEGIN %s; RETURN NULL; END $f$',
            fn, current_schema(), format(note, t.kind, replace(t.id_expr, 'r.', 'NEW.')));
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I FOR EACH ROW EXECUTE FUNCTION %I()',
            t.tbl || '_feed_insert', t.tbl, fn);
    END LOOP;
END $$;

-- 0063's functions still serve the child tables' INSERTs and every table's DELETE.
