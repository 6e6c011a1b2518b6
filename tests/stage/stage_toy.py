"""A toy stream stage for the runner's tests: RawMail in, one TraceEvent out ("upper-cased").

What the handler does is chosen by a marker in the mail's content, so one topic can carry good
records and each kind of failure. Module level on purpose: with process isolation the worker
subprocess imports the handler by reference.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

from mailroom.errors import PermanentError, TransientError
from mailroom.records import RawMail, TraceEvent
from mailroom.settings import Settings
from mailroom.stage import Context, Handler, Outcome, Output, Rejection, StageSpec, Trace

AT = datetime(2026, 11, 27, 9, 30, 15, 123000, tzinfo=UTC)


def raw(uid: int, content: bytes) -> RawMail:
    return RawMail(
        mailbox_id="mbx-1", mailbox_address="forward@example.com", owner_kind="forward",
        folder="INBOX", direction="incoming", protocol="imap", uidvalidity=1, uid=uid,
        fetched_at=AT, size=len(content), content=content,
    )


def toy(record: RawMail, context: Context) -> Outcome | Rejection:
    content = record.content or b""
    key = record.identity
    if b"REJECT" in content:
        return Rejection("toy_reject", "the toy refuses this one", [Trace(key, "skipped")])
    if b"PERMANENT" in content:
        raise PermanentError("permanently bad toy input")
    if b"BUG" in content:
        return Outcome(outputs=[Output("out", key, 1 / 0)])  # type: ignore[arg-type]
    if b"TRANSIENT" in content:
        raise TransientError("the toy's server is busy")
    if b"HANG" in content:
        time.sleep(3600)
    if b"NAP" in content:  # a slow message well inside any budget the tests give
        time.sleep(0.12)
    if b"BRIEF" in content:  # quicker than a worker child waits before sending answers it holds
        time.sleep(0.03)
    if b"STUCK" in content:  # stuck where no SIGALRM reaches (as a call in C would be)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
    if b"DIE" in content:
        os._exit(3)
    if b"HOG" in content:  # asks for 1.5 GB (zero pages: nothing is touched without a limit)
        hog = bytearray(1_500_000_000)
        del hog
    if b"FLAKY" in content and context.attempt < 3:
        raise TransientError(f"flaky, try {context.attempt}")
    upper = content.decode("utf-8", "replace").upper()
    event = TraceEvent(key=key, stage="toy", event="upper", at=AT, detail={"content": upper})
    return Outcome(
        outputs=[Output("out", key, event)],
        traces=[Trace(key, "toyed", {"try": str(context.attempt)}, raw_identity=key)],
    )


def make_handler(settings: Settings) -> Handler:
    return toy


SPEC = StageSpec(name="toy", input_topic="in", make_handler=make_handler, input_type=RawMail)
