"""Thin adapters from the rest of Mailroom to the pages: what each page shows, as typed rows.

No logic of its own where another package has it: mailbox tests are ingest's (:mod:`ingest.probe`,
:mod:`ingest.store`), lag and backlog are the ops tools' (:mod:`mailroom.console.ops.lag`), dead
letters and retries are ``mailroom dlq``'s, traces are ``mailroom trace``'s. Records are read from
persist's tables (``0050_persist_records.sql``).
"""
