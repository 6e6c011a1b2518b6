-- Large values are compressed with lz4 rather than pglz, where the server has lz4 (Debian's
-- and the official builds do since PostgreSQL 14). pglz was the biggest single cost of
-- persist's writes: an email's text and HTML bodies (~13 KB on realistic mail) took ~330–420 µs
-- of the backend's CPU to compress, lz4 ~60–70 µs; lz4 also reads back faster. What it costs:
-- ~1.85× the bytes for those bodies (5.2 against 2.8 KB an email). Only values written from now
-- on are affected: nothing is rewritten. A server without lz4 keeps pglz.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE email_activities
            ALTER COLUMN text_body SET COMPRESSION lz4,
            ALTER COLUMN html_body SET COMPRESSION lz4;
        ALTER TABLE attachment_contents ALTER COLUMN content SET COMPRESSION lz4;
        ALTER TABLE blob_chunks ALTER COLUMN data SET COMPRESSION lz4;
        ALTER TABLE persist_pending_plans ALTER COLUMN plan SET COMPRESSION lz4;
    END IF;
END
$$;
