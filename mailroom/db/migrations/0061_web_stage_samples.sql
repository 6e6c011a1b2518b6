-- The dashboard's history of each stage (mailroom/web/data/history.py): one sample per stage per
-- minute — committed offsets summed over partitions (throughput is their difference), messages
-- and seconds behind. Several dashboard replicas sample alike; the key keeps one row per minute.
-- Rows older than two days are deleted as new ones arrive: at most ~2,900 rows per stage.
CREATE TABLE web_stage_samples (
    stage text NOT NULL,
    minute timestamptz NOT NULL,
    committed bigint,  -- NULL for ingest, whose progress is not a Kafka offset
    messages_behind bigint NOT NULL,
    seconds_behind double precision NOT NULL,
    PRIMARY KEY (stage, minute)
);
