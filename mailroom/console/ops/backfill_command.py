"""``mailroom mailbox backfill ADDRESS --since DATE``: a mailbox's existing mail into the pipeline.

Ingest does the work (``ingest/backfill.py``); this command is the console's because a backfill
skips the mail persist already stores, and only the console may put two stages together: it
hands ingest persist's own query (:func:`persist.activities.stored_message_ids`) — no stage
reads another stage's table.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from ingest import backfill, store
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.console.ops.approval import mailbox_commands
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.settings import Settings
from persist.activities import stored_message_ids


def register(sub: argparse._SubParsersAction) -> None:
    p = mailbox_commands(sub).add_parser(
        "backfill", help="import a mailbox's existing mail (every monitored folder, received "
        "since DATE): no flags changed, the live checkpoint left alone, what is stored "
        "skipped; run it again to resume")
    p.add_argument("mailbox", help="address or id")
    p.add_argument("--since", required=True, type=date.fromisoformat,
                   help="ISO date: mail the server received on or after it")
    p.add_argument("--batch", type=int, default=backfill.BATCH, help="messages per fetch")
    p.set_defaults(func=mailbox_backfill)


def mailbox_backfill(settings: Settings, args: argparse.Namespace) -> int:
    codec = Codec.from_settings(settings)
    producer = make_producer(settings, client_id="mailroom-backfill")
    try:
        with connect(settings) as conn, connect(settings, autocommit=True) as blob_conn:
            mailbox = store.mailbox(conn, args.mailbox)
            profile = store.profile(conn, mailbox.profile_id)
            progress = backfill.backfill(
                settings, conn, mailbox, profile, args.since, codec=codec, producer=producer,
                put_blob=BlobStore(blob_conn).put,
                stored=lambda ids: stored_message_ids(conn, ids), out=sys.stdout,
                batch=args.batch)
    finally:
        producer.close()
    print(f"backfill of {mailbox.address} since {args.since}: {progress.published:,} "
          f"published, {progress.skipped:,} already stored")
    return 0
