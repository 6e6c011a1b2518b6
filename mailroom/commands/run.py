"""``mailroom run STAGE``: start one stage's process (or ``all`` of them).

Each stage adds one line to :data:`STAGES`: its name and the ``package.module:function`` that
runs it, called as ``function(settings, args) -> int``. Importing lazily keeps one stage's
heavy dependencies out of the others' processes.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
from collections.abc import Callable

from mailroom.errors import ConfigError
from mailroom.gctune import tune_for_a_long_run
from mailroom.settings import Settings

STAGES: dict[str, str] = {
    "ingest": "ingest.runner:main",
    "unwrap": "unwrap.stage:main",
    "route": "route.stage:main",
    "persist": "persist.stage:main",
    # The change feed's relay: the outbox persist's transactions fill → mailroom.records.
    "feed": "persist.feed:main",
    # Not a pipeline stage: windowed mail volume for the dashboard and alerts (docs/stats.md).
    "stats": "mailroom.stats.stage:main",
}


def has_processes(stage: str, settings: Settings) -> bool:
    """Whether ``stage`` runs processes of its own: route does not when it decides inside
    unwrap's (``route_in_unwrap``). What starts stages and what watches their groups ask this."""
    return not (stage == "route" and settings.route_in_unwrap)


#: ``mailroom run unwrap`` with ``route_in_unwrap``: route's handler after unwrap's, in one process.
ROUTE_IN_UNWRAP = "mailroom.commands.route_in_unwrap:main"


def resolve(stage: str, settings: Settings | None = None
            ) -> Callable[[Settings, argparse.Namespace], int]:
    entry = STAGES[stage]
    if stage == "unwrap" and settings is not None and settings.route_in_unwrap:
        entry = ROUTE_IN_UNWRAP
    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a stage of the pipeline (or all of them)")
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.stage != "all":
        return _run_one(args.stage, settings, args)
    # One process per stage, so a crash or a CPU-heavy stage cannot stall the others.
    procs = [
        multiprocessing.Process(target=_run_one, args=(name, settings, args), name=name)
        for name in STAGES if has_processes(name, settings)
    ]
    if not procs:
        raise ConfigError("no stages registered")
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)


def _run_one(stage: str, settings: Settings, args: argparse.Namespace) -> int:
    main = resolve(stage, settings)  # imports the stage: what is alive after this is never garbage
    tune_for_a_long_run()
    return int(main(settings, args) or 0)
