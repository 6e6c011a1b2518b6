"""Persist's privacy pass over a batch (persist/privacy.py) on a real schema: erased plans and
trace events found in one look-up under the shared erasure lock, and the claim-check blobs of
mail that must not be kept condemned unless a stored attachment uses them (when condemned blobs
go: test_blob_grace.py)."""

from __future__ import annotations

import psycopg
from persistbuild import config, email, make_plan, reference

from mailroom import erasure
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.records import TraceEvent
from mailroom.records.email import Attachment, Markers
from persist import privacy
from route.plan import plan as route_plan


def _condemned(db: psycopg.Connection, ref: str) -> bool | None:
    """None: the blob is gone."""
    row = db.execute("SELECT condemned_at IS NOT NULL FROM blobs WHERE sha256 = %s",
                     (ref,)).fetchone()
    db.commit()
    return None if row is None else bool(row[0])


def _list(db: psycopg.Connection, digests: dict[str, str]) -> None:
    audit = db.execute("INSERT INTO erasures (selector_kind, selector_digest) VALUES "
                       "('address', %s) RETURNING id", ("0" * 64,)).fetchone()
    assert audit is not None
    for digest, kind in digests.items():
        db.execute("INSERT INTO erasure_list (digest, kind, erasure_id) VALUES (%s, %s, %s)",
                   (digest, kind, audit[0]))
    db.commit()


def test_erased_plans_and_events_are_found_in_one_batch(db: psycopg.Connection,
                                                        codec: Codec) -> None:
    _list(db, {erasure.id_digest("m1@customer.example"): "id",
               erasure.address_digest("zed@elsewhere.example"): "address"})
    plans = [make_plan(codec, email(message_id="m1@customer.example")),
             make_plan(codec, email(message_id="m2@customer.example")),
             make_plan(codec, email(message_id="m3@customer.example",
                                    to=("support@acme.example", "Zed@Elsewhere.example")))]
    events = [TraceEvent(key="m1@customer.example", stage="unwrap", event="unwrapped"),
              TraceEvent(key="raw-7", stage="ingest", event="fetched"),
              TraceEvent(key="x", stage="route", event="routed",
                         dedupe_key="m2@customer.example")]
    with db.transaction():
        gone, gone_events = privacy.screen(db, codec, plans, events)
        held = db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND mode = 'ShareLock' AND pid = pg_backend_pid()").fetchone()
    assert gone == {0, 2} and gone_events == {0}
    assert held == (1,), "the erasure lock is held shared for the batch"


def test_blobs_of_skipped_private_mail_are_condemned_unless_stored_mail_uses_them(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    lonely, shared = store.put(b"private scan " * 30_000), store.put(b"common logo " * 30_000)
    db.execute("INSERT INTO attachment_contents (sha256, size, blob_ref) VALUES (%s, 1, %s)",
               ("f" * 64, shared))
    db.commit()
    attachments = tuple(Attachment(name=f"a{i}.bin", content_type="application/octet-stream",
                                   size=1, sha256=ref, blob_ref=ref)
                        for i, ref in enumerate((lonely, shared)))
    private = email(message_id="p1@customer.example", attachments=attachments,
                    markers=Markers(sensitivity="Private"))
    skip = route_plan(private, reference(), config(), codec.encode_record(private))
    assert skip.skipped and skip.email == b"" and skip.steps[0].blobs == tuple(
        sorted((lonely, shared)))
    with db.transaction():
        assert privacy.screen(db, codec, [skip], []) == (set(), set())
    assert _condemned(db, lonely) is True, "kept for the grace: mail in flight may carry it"
    assert _condemned(db, shared) is False, "a stored attachment still uses it"


def test_a_dropped_erased_plan_condemns_its_blobs(db: psycopg.Connection,
                                                     codec: Codec) -> None:
    store = BlobStore(db)
    ref = store.put(b"erased attachment " * 30_000)
    db.commit()
    part = Attachment(name="scan.pdf", content_type="application/pdf", size=1, sha256=ref,
                      blob_ref=ref)
    replayed = make_plan(codec, email(message_id="gone@customer.example", attachments=(part,)))
    assert not replayed.skipped  # planned by a route whose snapshot predates the erasure
    _list(db, {erasure.id_digest("gone@customer.example"): "id"})
    with db.transaction():
        assert privacy.screen(db, codec, [replayed], [])[0] == {0}
    assert _condemned(db, ref) is True
