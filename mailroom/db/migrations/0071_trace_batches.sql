-- Trace events arrive in batches: one trace record carries the events of a stage's batch whose
-- keys fall in one partition (mailroom.records.TraceBatch). An event's place is its record's
-- topic coordinates and its position in the record; a single-event record of an older writer
-- is position 0.
ALTER TABLE message_traces ADD COLUMN topic_index integer NOT NULL DEFAULT 0;
ALTER TABLE message_traces DROP CONSTRAINT message_traces_pkey;
ALTER TABLE message_traces ADD PRIMARY KEY (topic, topic_partition, topic_offset, topic_index);
