"""The operator's console: the dashboard (``web``), operations (``ops``: lag, replay, dead
letters, traces, erasure, rule deployment), the local stack (``stack``), the demo and the
doctor.

The one layer that may import the stages: the kernel (the rest of ``mailroom``) imports
neither the stages nor this package, the stages import the kernel only
(``tests/kernel/test_layers.py`` reads every import and holds to it).
"""
