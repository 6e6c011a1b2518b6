-- The stream stages' durable attempt counter (mailroom/attempts.py explains the design).
-- One row per consumer group and partition, overwritten batch by batch: the table never grows
-- past groups x partitions, so nothing needs pruning.

CREATE TABLE stage_attempts (
    group_id     text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL CHECK (partition >= 0),
    -- The range a process last started on: first_offset is the committed position it started
    -- from, last_offset the end of the batch it took.
    first_offset bigint      NOT NULL CHECK (first_offset >= 0),
    last_offset  bigint      NOT NULL CHECK (last_offset >= first_offset),
    -- How many times in a row a process started at first_offset, alone, without committing.
    attempts     integer     NOT NULL CHECK (attempts >= 1),
    -- Records up to here were in flight when a process died: handle them one at a time.
    -- -1 when nothing is suspect.
    suspect_end  bigint      NOT NULL DEFAULT -1,
    -- The process stopped at first_offset for a reason other than a crash (paused before an
    -- unreadable record, broker failure): the next start there is not a repeat.
    released     boolean     NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
