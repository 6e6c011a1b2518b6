-- Every persist batch expires the waits past their bound (persist/park.py, expire): the
-- pending plans received before a cutoff, found without reading the whole table.
CREATE INDEX persist_pending_plans_received ON persist_pending_plans (received_ms);
