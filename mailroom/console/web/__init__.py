"""``mailroom web``: the operator's dashboard, server-rendered, behind a login.

Small modules, each one idea: :mod:`.app` routes requests and sets the security headers,
:mod:`.auth` logs in and signs sessions, :mod:`.csrf` guards every form that changes
something, :mod:`.templates` renders (escaping everything), :mod:`.data` adapts what the rest of
Mailroom knows (ingest's store, the ops tools, persist's tables) and :mod:`.pages` turns it
into HTML. Mail is attacker-controlled input: nothing from it reaches a page unescaped.
"""
