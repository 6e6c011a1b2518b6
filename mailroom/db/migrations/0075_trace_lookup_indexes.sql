-- mailroom trace and the dashboard look an email's trace up by its raw identity too (the link
-- from a dedupe key to what ingest fetched), and the dead-letters page reads the 'retried'
-- events: both were full scans of the trace table, which outlives the trace topic's retention
-- and only grows. A raw identity is on ingest's and unwrap's events (about half the rows).
CREATE INDEX message_traces_raw_identity ON message_traces (raw_identity)
    WHERE raw_identity IS NOT NULL;
CREATE INDEX message_traces_retried ON message_traces ((detail->>'dead_letter'), at)
    WHERE event = 'retried';
