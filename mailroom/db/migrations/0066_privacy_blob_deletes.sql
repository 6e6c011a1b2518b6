-- Persist deletes the claim-check blobs of mail it must not keep — erased mail a replay brought
-- back, and mail route skipped for privacy — when no stored attachment uses them
-- (persist/privacy.py). Roles and prefix as in 0051.
DO $$
DECLARE
    r text := coalesce(nullif(current_setting('mailroom.role_prefix', true), ''), 'mailroom')
              || '_persist';
BEGIN
    EXECUTE format('GRANT DELETE ON TABLE %I.blobs, %I.blob_chunks TO %I',
                   current_schema(), current_schema(), r);
END $$;
