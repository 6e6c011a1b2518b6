"""The chaos suite's machinery, shared by ``bench/chaos.py`` and ``tests/chaos/``.

A run seeds N forwarded mails into one forward mailbox on the local Dovecot, runs the four
stages as separate processes (each in its own process group), kills them at random while they
work, lets the pipeline drain and then checks the outcome *exactly*: one email activity per
mail, no duplicate row of any kind, no dead letters, no consumer lag, nothing owed on the mail
server.

- :mod:`chaoslib.mail`: the mails (pure: specs and their RFC 5322 bytes)
- :mod:`chaoslib.seed`: a run's own schema, topics, reference records, mailboxes and Maildir
- :mod:`chaoslib.stages`: the stage processes, killed and restarted by process group
- :mod:`chaoslib.drive`: the kill schedule, PostgreSQL restarts, waiting for the drain
- :mod:`chaoslib.checks`: the exact-count checks
- :mod:`chaoslib.runs`: one run from seeding to clean-up, with or without kills
- :mod:`chaoslib.preconditions`: the tests' skip when the local stack cannot be seeded
"""
