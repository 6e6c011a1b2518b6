"""The unwrap stage: raw messages to Email records (see ``docs/unwrap.md``).

The pure part is ``unwrap.unwrap.unwrap(raw, context)``; it needs no broker. ``stage.py`` (the
Kafka side) comes with the stream runner.
"""
