"""Condemned claim-check blobs on a real schema (persist/privacy.py, docs/privacy.md): what a
privacy skip or an erasure no longer needs is kept while another email carrying the same file
may still be between unwrap and persist, and goes once its grace has run out.

Time passes by moving a blob's clock (``last_referenced_at``, the last put of its content) back
in SQL, never by waiting."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from persistbuild import apply, config, email, make_plan, reference, rows

from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.console.ops.erase import Selector, execute
from mailroom.records.action import Plan
from mailroom.records.email import Attachment, Markers
from persist import privacy
from route.plan import plan as route_plan

GRACE = timedelta(hours=168)
SCAN = b"the same large scan, in two emails " * 20_000


def _attachment(ref: str) -> tuple[Attachment, ...]:
    return (Attachment(name="scan.pdf", content_type="application/pdf", size=len(SCAN),
                       sha256=ref, blob_ref=ref),)


def _private(codec: Codec, ref: str, message_id: str = "p1@customer.example") -> Plan:
    private = email(message_id=message_id, attachments=_attachment(ref),
                    markers=Markers(sensitivity="Private"))
    skip = route_plan(private, reference(), config(), codec.encode_record(private))
    assert skip.skipped and ref in skip.steps[0].blobs
    return skip


def _tracked(codec: Codec, ref: str, message_id: str = "t1@customer.example", **kw: object
             ) -> Plan:
    return make_plan(codec, email(message_id=message_id, attachments=_attachment(ref), **kw))


def _batch(db: psycopg.Connection, codec: Codec, *plans: Plan) -> None:
    """Persist's privacy pass over one batch, in the batch's transaction."""
    with db.transaction():
        privacy.screen(db, codec, list(plans), [], GRACE)


def _age(db: psycopg.Connection, ref: str, by: timedelta) -> None:
    db.execute("UPDATE blobs SET last_referenced_at = last_referenced_at - %s "
               "WHERE sha256 = %s", (by, ref))
    db.commit()


def _state(db: psycopg.Connection, ref: str) -> tuple[bool, bool, int]:
    """(the blob exists, it is condemned, its chunks)."""
    [(exists, condemned)] = rows(
        db, "SELECT count(*) > 0, coalesce(bool_or(condemned_at IS NOT NULL), false) "
        "FROM blobs WHERE sha256 = %s", ref)
    [(chunks,)] = rows(db, "SELECT count(*) FROM blob_chunks WHERE sha256 = %s", ref)
    db.commit()
    return exists, condemned, chunks


def test_a_tracked_email_in_flight_keeps_the_bytes_a_private_skip_shared(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    # Unwrap puts the file for a tracked email and for a private one: one blob.
    ref = store.put(SCAN)
    assert store.put(SCAN) == ref
    db.commit()
    # The private one's skip reaches persist first: its blob is condemned, not deleted.
    _batch(db, codec, _private(codec, ref))
    assert _state(db, ref)[:2] == (True, True)
    # Then the tracked one: its attachment row points at bytes that are still there.
    [result] = apply(db, codec, _tracked(codec, ref))
    assert result.failure is None
    assert rows(db, "SELECT blob_ref FROM attachment_contents") == [(ref,)]
    assert store.get(ref) == SCAN
    # Long after the grace, the sweep finds it stored: the mark is lifted, the bytes stay.
    _age(db, ref, GRACE + timedelta(days=30))
    _batch(db, codec)
    assert _state(db, ref)[:2] == (True, False)
    assert store.get(ref) == SCAN


def test_the_private_content_goes_once_its_grace_has_run_out(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    ref = store.put(SCAN)
    chunks = _state(db, ref)[2]
    assert chunks >= 1
    _batch(db, codec, _private(codec, ref))
    _age(db, ref, GRACE - timedelta(hours=1))
    _batch(db, codec)  # any batch sweeps, even one without a plan
    assert _state(db, ref) == (True, True, chunks), "still within the grace"
    _age(db, ref, timedelta(hours=2))
    _batch(db, codec)
    assert _state(db, ref) == (False, False, 0), "blob and chunks gone"


def test_a_put_of_the_same_content_after_the_skip_starts_the_clock_again(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    ref = store.put(SCAN)
    _batch(db, codec, _private(codec, ref))
    _age(db, ref, GRACE + timedelta(hours=1))
    store.put(SCAN)  # unwrap, for a tracked email that arrived after the skip
    db.commit()
    _batch(db, codec)
    assert _state(db, ref)[:2] == (True, True), "mail in flight may carry it"
    apply(db, codec, _tracked(codec, ref))
    assert store.get(ref) == SCAN


def test_a_parked_plan_carrying_the_blob_keeps_it(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    ref = store.put(SCAN)
    db.commit()
    # A reply to Alice, whose mailbox tracks replies only, waits for its parent: parked, its
    # attachment row not written yet.
    reply = _tracked(codec, ref, message_id="r@customer.example", mailbox="11",
                     to=("alice@acme.example",), subject="Re: Quote",
                     in_reply_to="p@acme.example")
    [parked] = apply(db, codec, reply)
    assert parked.applied and parked.applied.event == "parked"
    _batch(db, codec, _private(codec, ref))
    _age(db, ref, GRACE + timedelta(days=30))
    _batch(db, codec)
    assert _state(db, ref)[:2] == (True, True), "kept, its clock started again"
    [(fresh,)] = rows(db, "SELECT last_referenced_at > now() - interval '1 hour' FROM blobs "
                          "WHERE sha256 = %s", ref)
    db.commit()
    assert fresh
    parent = make_plan(codec, email(mailbox="10", subject="Quote", message_id="p@acme.example",
                                    to=("support@acme.example", "alice@acme.example")))
    [landed] = apply(db, codec, parent)
    assert [a.event for _, a in landed.reevaluated] == ["persisted"]
    assert rows(db, "SELECT blob_ref FROM attachment_contents") == [(ref,)]
    assert store.get(ref) == SCAN


def test_erasure_frees_old_bytes_at_once_and_spares_an_email_in_flight(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    old, fresh = SCAN + b"old", SCAN + b"fresh"
    old_ref, fresh_ref = store.put(old), store.put(fresh)
    db.commit()
    apply(db, codec, _tracked(codec, old_ref, message_id="e1@customer.example"),
          _tracked(codec, fresh_ref, message_id="e2@customer.example"))
    # e1's file was last put long ago: no mail in flight can carry it.
    _age(db, old_ref, GRACE + timedelta(hours=1))
    _, found = execute(db, codec, Selector.message_id("<e1@customer.example>"), "dpo", GRACE)
    assert found.blob_refs == [old_ref] and found.blobs_deleted == [old_ref]
    assert found.blobs_due_by is None
    assert _state(db, old_ref) == (False, False, 0)

    # e2's file was put a moment ago, also for t2, which unwrap has handed on to route.
    store.put(fresh)
    db.commit()
    _, found = execute(db, codec, Selector.message_id("<e2@customer.example>"), "dpo", GRACE)
    assert found.blob_refs == [fresh_ref] and found.blobs_deleted == []
    [(last,)] = rows(db, "SELECT last_referenced_at FROM blobs WHERE sha256 = %s", fresh_ref)
    db.commit()
    assert found.blobs_due_by == last + GRACE
    assert _state(db, fresh_ref)[:2] == (True, True)
    apply(db, codec, _tracked(codec, fresh_ref, message_id="t2@customer.example"))
    assert store.get(fresh_ref) == fresh


def test_erased_bytes_go_within_the_grace_when_nothing_else_carries_them(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    ref = store.put(SCAN)
    db.commit()
    apply(db, codec, _tracked(codec, ref, message_id="e3@customer.example"))
    _, found = execute(db, codec, Selector.message_id("<e3@customer.example>"), "dpo", GRACE)
    assert found.blobs_deleted == [] and found.blobs_due_by is not None
    assert _state(db, ref)[:2] == (True, True)
    _age(db, ref, GRACE + timedelta(minutes=1))
    _batch(db, codec)  # persist's next batch after the stated time
    assert _state(db, ref) == (False, False, 0)


def test_erasure_condemns_the_blobs_of_parked_plans_it_removes(
    db: psycopg.Connection, codec: Codec,
) -> None:
    store = BlobStore(db)
    ref = store.put(SCAN)
    db.commit()
    reply = _tracked(codec, ref, message_id="r@customer.example", mailbox="11",
                     to=("alice@acme.example",), subject="Re: Quote",
                     in_reply_to="p@acme.example")
    apply(db, codec, reply)
    _age(db, ref, GRACE + timedelta(hours=1))
    _, found = execute(db, codec, Selector.message_id("<r@customer.example>"), "dpo", GRACE)
    assert found.pending and found.blob_refs == [ref] and found.blobs_deleted == [ref]
    assert _state(db, ref) == (False, False, 0)
