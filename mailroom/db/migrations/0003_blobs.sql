-- The content-addressed blob store behind claim checks (mailroom/blobs.py).
-- A blob is stored as ~1 MB chunks so neither writing nor reading it ever needs the whole
-- object in memory; the blobs row is written last, in the same transaction, so a blob that
-- exists is always complete.

CREATE TABLE blobs (
    sha256             text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size               bigint      NOT NULL CHECK (size >= 0),
    chunk_count        integer     NOT NULL CHECK (chunk_count >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Extended by every put of the same content and by touch(); retention deletes by this.
    last_referenced_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX blobs_last_referenced ON blobs (last_referenced_at);

-- sha256 holds the blob's hash, or 'upload:<uuid>' while a put is still streaming (the hash is
-- only known at the end); the put renames its chunks in the transaction that adds the blob.
CREATE TABLE blob_chunks (
    sha256 text    NOT NULL,
    seq    integer NOT NULL CHECK (seq >= 0),
    data   bytea   NOT NULL,
    PRIMARY KEY (sha256, seq)
);

