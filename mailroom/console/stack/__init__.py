"""The embedded local stack: Kafka (KRaft), PostgreSQL and Dovecot on 127.0.0.1.

One module per service (:mod:`.kafka`, :mod:`.postgres`, :mod:`.dovecot`), each with the same
three functions — ``up(settings) -> str``, ``down(settings) -> str``, ``status(settings) ->
ServiceStatus`` — plus :mod:`.tls` for the self-signed certificate and :mod:`.process` for
detached processes and pid files. :mod:`.commands` wires them to ``mailroom stack``.
Everything lives under ``settings.state_path``; nothing here is used by the pipeline itself,
which only sees host names and ports from the settings.
"""
