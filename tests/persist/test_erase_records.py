"""`mailroom erase` on records persist stored (a real schema, no broker): what each selector
covers — cases, created contacts, imported records left alone, the trace events of the mail and
of its raw message — and the audit record and erasure list it leaves."""

from __future__ import annotations

import json

import psycopg
from persistbuild import RULES, apply, config, email, make_plan, rows
from psycopg.types.json import Jsonb

from mailroom import erasure
from mailroom.codec import Codec
from mailroom.console.ops.erase import Selector, execute, find


def _trace(db: psycopg.Connection, offset: int, key: str, stage: str, detail: dict[str, str],
           raw_identity: str | None = None, dedupe_key: str | None = None) -> None:
    db.execute(
        "INSERT INTO message_traces (topic, topic_partition, topic_offset, key, stage, event, "
        "at, dedupe_key, raw_identity, detail) VALUES ('t', 0, %s, %s, %s, 'e', now(), %s, %s, "
        "%s)", (offset, key, stage, dedupe_key, raw_identity, Jsonb(detail)))


def test_by_message_id_keeps_a_case_others_regard_and_erases_its_title(
    db: psycopg.Connection, codec: Codec,
) -> None:
    apply(db, codec, make_plan(codec, email()))
    reply = email(message_id="m2@customer.example", subject="Re: Printer broken",
                  in_reply_to="m1@customer.example", minutes=5)
    apply(db, codec, make_plan(codec, reply))
    [(case_id,)] = rows(db, "SELECT id FROM cases")
    _trace(db, 1, "raw-1", "ingest", {"mailbox": "support@acme.example"}, raw_identity="raw-1")
    _trace(db, 2, "m1@customer.example", "unwrap", {"copy_kind": "direct"},
           raw_identity="raw-1", dedupe_key="m1@customer.example")
    _trace(db, 3, "m2@customer.example", "route", {"00 filter": "accept"})
    db.commit()

    dry = find(db, codec, Selector.message_id(" <m1@Customer.Example> "))
    db.rollback()
    assert (len(dry.activity_ids), dry.case_ids, dry.cases_kept) == (1, [], [case_id])
    assert len(dry.trace_keys) == 2, "the unwrap event, and the raw message's fetch by its id"

    audit, found = execute(db, codec, Selector.message_id("<m1@customer.example>"), "dpo")
    assert rows(db, "SELECT dedupe_key FROM email_activities") == [("m2@customer.example",)]
    assert rows(db, "SELECT title FROM cases") == [("(erased)",)]
    assert rows(db, "SELECT key FROM message_traces") == [("m2@customer.example",)]
    listed = {r[0] for r in rows(db, "SELECT digest FROM erasure_list")}
    assert {erasure.id_digest("m1@customer.example"), erasure.id_digest("raw-1")} <= listed
    [(kind, by, counts, ids)] = rows(db, "SELECT selector_kind, requested_by, counts, "
                                         "activity_ids FROM erasures WHERE id = %s", audit)
    assert (kind, by, ids, counts["case_titles"]) == ("message_id", "dpo", found.activity_ids, 1)
    assert "m1@" not in json.dumps(counts)


def test_by_address_removes_created_contacts_and_names_imported_records(
    db: psycopg.Connection, codec: Codec,
) -> None:
    contacts = config(track={**RULES["track"], "create_contacts": {"queue:support": True}})
    apply(db, codec, make_plan(codec, email()))  # ann: an imported contact
    stranger = email(message_id="s1@far.example", sender="lars@far.example", minutes=1)
    apply(db, codec, make_plan(codec, stranger, contacts))
    [(created,)] = rows(db, "SELECT contact_id FROM persist_created_contacts")
    _trace(db, 1, "s1@far.example", "route", {"00 parties.from": "unknown: lars@far.example"})
    _trace(db, 2, "other@x.example", "route", {"00 parties.from": "vlars@far.example"})
    db.commit()

    _, lars = execute(db, codec, Selector.address("Lars@Far.Example"))
    assert lars.contact_ids == [created] and lars.kept == []
    assert rows(db, "SELECT count(*) FROM contacts WHERE id = %s", created) == [(0,)]
    assert rows(db, "SELECT count(*) FROM persist_created_contacts") == [(0,)]
    assert rows(db, "SELECT key FROM message_traces") == [("other@x.example",)], \
        "a longer address containing it is another person"

    _, ann = execute(db, codec, Selector.address("ann@customer.example"))
    assert ann.kept == ["contact:c-ann"], "the CRM's reference data is listed, not removed"
    assert rows(db, "SELECT count(*) FROM email_activities") == [(0,)]
    assert rows(db, "SELECT count(*) FROM cases") == [(0,)]
    audits = rows(db, "SELECT selector_kind, selector_digest FROM erasures ORDER BY id")
    assert audits == [("address", erasure.address_digest("lars@far.example")),
                      ("address", erasure.address_digest("ann@customer.example"))]
