"""Windowed mail statistics: volume per receiving mailbox and per sender (``mailroom run stats``).

The one place Mailroom uses faust-streaming's agents and tables (docs/stats.md says why): an
agent reads ``<prefix>.unwrapped``, re-keys each email by what is counted (a mailbox, a sender)
through ``<prefix>.stats-volume-events`` so that every count lives in exactly one partition, and
a second agent keeps tumbling-window counts in a faust table whose changelog
(``<prefix>.stats-volume-changelog``, compacted) is both its recovery log and what the dashboard
reads. Prometheus gauges (``mailroom_mail_volume``) feed the alert rules.

It lives in the kernel package rather than beside the stages because it decides nothing about
records: it observes the pipeline, like ``metrics.py`` and ``ops/``.
"""
