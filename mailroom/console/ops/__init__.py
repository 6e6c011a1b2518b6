"""Operating the pipeline: consumer lag, replays, dead letters, one message's trace.

Read-mostly tools over the same Kafka clients (:mod:`mailroom.kafka`) and PostgreSQL tables the
stages use. Nothing here is stage-specific logic: stages are named by their consumer groups and
input topics (:mod:`mailroom.console.ops.groups`).
"""
