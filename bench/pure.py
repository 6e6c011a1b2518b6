"""The pure functions on the end-to-end bench's own mail: CPU per message of unwrap and of route,
one process, no broker, no database — the yardstick each stage alone is held to.

    .venv/bin/python bench/pure.py [--mails 3000] [--mix realistic] [--size 27000] [--rounds 3]

The mail is ``bench/e2e.py``'s (``bench/mailgen.py``, same seed, same mix and size). Each
message becomes the RawMail ingest would publish (the forward mailbox's mail as a forward
mailbox's, a user's as a user's), then:

* **unwrap**: ``unwrap.unwrap.unwrap`` with the forwarding users known and the bench's
  authserv-id trusted, as the stage runs it on this mail;
* **route**: ``route.plan.plan`` of each Email unwrap gave, with the bench's rules
  (``[track] default = "all"``) and the Email's Avro bytes, as the stage receives it; the
  reference data names the forwarding and direct users and their mailboxes (the bench's
  customers are unknown senders, as in the bench); every message must plan an activity.

Printed: CPU µs per message of each, best of ``--rounds`` (process time, not wall: the machine
is shared) — the function alone, and with the Avro decode of its input and encode of its
output that its stage's handler adds — and one JSON line. ``bench/e2e.py --stages-alone``
gives each stage alone on the same mail: the ratio of the two is what a stage spends around
its function.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_REPO), *(p for p in sys.path if Path(p or ".").resolve() != _REPO / "bench")]

from bench import mailgen  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.records.email import Email  # noqa: E402
from mailroom.records.raw import RawMail  # noqa: E402
from mailroom.records.steps import UpsertEmailActivity  # noqa: E402
from route.config import from_document  # noqa: E402
from route.plan import plan  # noqa: E402
from route.reference import AddressMatch, Mailbox, RecordRef, ReferenceData  # noqa: E402
from unwrap.context import Rejection, UnwrapContext  # noqa: E402
from unwrap.unwrap import unwrap  # noqa: E402

FORWARD_MAILBOX = "1"


def raw_mails(mails: list[mailgen.Mail]) -> list[RawMail]:
    """Each message as ingest publishes it: the forward mailbox's, or its user's."""
    out = []
    for uid, m in enumerate(mails, start=1):
        forward = m.mailbox == mailgen.FORWARD_LOCAL
        out.append(RawMail(
            mailbox_id=FORWARD_MAILBOX if forward else m.mailbox,
            mailbox_address=f"{m.mailbox}@{mailgen.DOMAIN}",
            owner_kind="forward" if forward else "user",  # type: ignore[arg-type]
            folder="INBOX", direction="incoming", protocol="imap",
            fetched_at=datetime.now(UTC), size=len(m.data), uidvalidity=1, uid=uid,
            content=m.data))
    return out


def context() -> UnwrapContext:
    return UnwrapContext(
        forwarders={FORWARD_MAILBOX: {f"{u}@{mailgen.DOMAIN}": f"u-{u}"
                                      for u in mailgen.FORWARDERS}},
        authserv_id=mailgen.AUTHSERV_ID)


def reference() -> ReferenceData:
    """The bench's users and mailboxes: the forward mailbox, and each direct user's own."""
    users = (*mailgen.FORWARDERS, *mailgen.DIRECT)
    forward = f"{mailgen.FORWARD_LOCAL}@{mailgen.DOMAIN}"
    return ReferenceData(
        addresses={f"{u}@{mailgen.DOMAIN}": (AddressMatch(RecordRef("user", u)),) for u in users},
        mailboxes={FORWARD_MAILBOX: Mailbox(FORWARD_MAILBOX, forward, None),
                   **{u: Mailbox(u, f"{u}@{mailgen.DOMAIN}", RecordRef("user", u))
                      for u in mailgen.DIRECT}})


def best_cpu_us(rounds: int, n: int, work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mails", type=int, default=3000)
    p.add_argument("--mix", choices=mailgen.MIXES, default="realistic")
    p.add_argument("--size", type=int, default=mailgen.DEFAULT_SIZE)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    mails = mailgen.MailMaker(args.mix, args.size, "pure").batch(0, args.mails)
    raws, ctx = raw_mails(mails), context()
    emails: list[Email] = []
    for raw in raws:
        result = unwrap(raw, ctx)
        if isinstance(result, Rejection):
            raise SystemExit(f"unwrap refused message {raw.uid}: {result}")
        emails += result
    codec = Codec.load(_REPO / "schemas")
    encoded = [codec.encode_record(e) for e in emails]
    ref = reference()
    cfg = from_document({"track": {"default": "all"}})
    activities = sum(1 for e, b in zip(emails, encoded, strict=True)
                     if plan(e, ref, cfg, b).steps_of(UpsertEmailActivity))

    raw_bytes = [codec.encode_record(r) for r in raws]
    unwrap_us = best_cpu_us(args.rounds, len(raws), lambda: [unwrap(r, ctx) for r in raws])
    unwrap_codec_us = best_cpu_us(args.rounds, len(raws), lambda: [
        [codec.encode_record(e) for e in unwrap(codec.decode_record(b, RawMail), ctx)]
        for b in raw_bytes])
    route_us = best_cpu_us(args.rounds, len(emails), lambda: [
        plan(e, ref, cfg, b) for e, b in zip(emails, encoded, strict=True)])
    route_codec_us = best_cpu_us(args.rounds, len(emails), lambda: [
        codec.encode_record(plan(codec.decode_record(b, Email), ref, cfg, b)) for b in encoded])

    print(f"python {platform.python_version()}, one process; {len(raws)} messages "
          f"({args.mix}, {sum(len(m.data) for m in mails) / 1e6:.1f} MB), best of {args.rounds}")
    print(f"  unwrap, pure function:               {unwrap_us:6.0f} µs CPU a message")
    print(f"  unwrap, decode RawMail + it + encode: {unwrap_codec_us:6.0f}")
    print(f"  route,  pure function:               {route_us:6.0f} µs CPU an email")
    print(f"  route,  decode Email + it + encode:   {route_codec_us:6.0f}")
    print(json.dumps({"bench": "pure", "mails": len(raws), "emails": len(emails),
                      "activities": activities, "mix": args.mix, "size": args.size,
                      "unwrap_us": round(unwrap_us), "unwrap_with_codec_us": round(unwrap_codec_us),
                      "route_us": round(route_us), "route_with_codec_us": round(route_codec_us)}))


if __name__ == "__main__":
    main()
