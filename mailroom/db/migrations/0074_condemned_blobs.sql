-- Claim-check blobs of mail that must not be kept (a privacy skip, an erasure) are condemned,
-- not deleted at once: the store is content-addressed, and another, tracked email carrying the
-- same file may be between unwrap (which put the blob) and persist (which will store the
-- attachment row pointing at it). Persist's sweep deletes a condemned blob once its content was
-- not put for condemned_blob_grace_hours and no stored attachment or parked plan uses it
-- (persist/privacy.py, docs/privacy.md).

-- When it was condemned; NULL: kept as long as anything references it.
ALTER TABLE blobs ADD COLUMN condemned_at timestamptz;

-- The sweep's look-up, every persist batch: the condemned ones by their last put.
CREATE INDEX blobs_condemned ON blobs (last_referenced_at) WHERE condemned_at IS NOT NULL;

-- "Does a stored attachment use this blob?", asked by condemnation and sweep alike.
CREATE INDEX attachment_contents_blob_ref ON attachment_contents (blob_ref)
    WHERE blob_ref IS NOT NULL;
