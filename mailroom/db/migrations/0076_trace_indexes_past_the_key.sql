-- The trace table's indexes by Message-ID, dedupe key and raw identity hold only the rows where
-- that value differs from the row's key. Every stage keys an event by the dedupe key (the
-- normalised Message-ID) or, before unwrap, by the raw identity, so on most rows these values
-- ARE the key, already in message_traces_key: indexing them again cost three index entries an
-- email for nothing. Readers ask `key = ANY(names) OR (message_id = ANY(names) AND message_id
-- <> key) OR ...` (persist.traces.named), the same rows as before, each arm with its index.
DROP INDEX message_traces_message_id;
CREATE INDEX message_traces_message_id ON message_traces (message_id, at)
    WHERE message_id <> key;
DROP INDEX message_traces_dedupe_key;
CREATE INDEX message_traces_dedupe_key ON message_traces (dedupe_key, at)
    WHERE dedupe_key <> key;
DROP INDEX message_traces_raw_identity;
CREATE INDEX message_traces_raw_identity ON message_traces (raw_identity)
    WHERE raw_identity <> key;
