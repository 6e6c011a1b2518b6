-- Persist runs on the stage runner too: its durable attempt counter (stage_attempts, 0010)
-- counts persist's batches like unwrap's and route's. Roles and prefix as in 0051.
DO $$
DECLARE
    r text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom')
              || '_persist';
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON TABLE %I.stage_attempts TO %I',
                   current_schema(), r);
END $$;
