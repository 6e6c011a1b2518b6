"""Big messages travel by claim check: no record on the raw topic over the threshold."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, message, read_raw

from ingest.publish import claim_check
from ingest.runner import Ingestor, blob_put
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.records.raw import RawMail
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def forty_attachments() -> bytes:
    """One message of forty 0.9 MB attachments: no single part passes the 1 MB threshold, the
    whole record does (the threshold is measured on the record, not per part)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = "big@example.org", "someone@example.com"
    msg["Subject"], msg["Message-ID"] = "forty attachments", "<forty@example.org>"
    msg.set_content("see the attachments\n")
    for i in range(40):
        payload = bytes((i + j) % 251 for j in range(900 * 1024))
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=f"part{i:02d}.bin")
    return bytes(msg).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_30mb_message_and_forty_attachments_go_by_claim_check(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    big, forty, small = message(1, size=30 * 1024 * 1024), forty_attachments(), message(2)
    append(db_settings, user, password, [big, forty, small])
    add_mailbox(db, db_settings, user, password)
    with connect(db_settings, autocommit=True) as blob_conn:
        ing = Ingestor(db_settings, db, make_producer(db_settings), blob_put(blob_conn))
        assert ing.run_once() == 3
        # read_raw also checks that no record on the topic is over claim_check_bytes
        raws = sorted(read_raw(db_settings, 3), key=lambda r: r.uid or 0)
        store = BlobStore(blob_conn)
        for raw, sent in zip(raws[:2], (big, forty), strict=True):
            assert raw.content is None and raw.blob_ref and raw.size == len(sent)
            assert store.get(raw.blob_ref) == sent  # the bytes exactly as received
        assert raws[2].content == small and raws[2].blob_ref is None


@pytest.mark.parametrize("size, by_claim_check", [(1_000, False), (3_000, True)])
def test_a_message_is_encoded_once_when_it_fits_and_the_value_is_what_is_sent(
    size: int, by_claim_check: bool,
) -> None:
    settings = Settings(claim_check_bytes=2_000)
    codec = Codec.from_settings(settings)
    encoded: list[object] = []
    plain = codec.encode_record

    def counting(record: object) -> bytes:
        encoded.append(record)
        return plain(record)  # type: ignore[arg-type]

    codec.encode_record = counting  # type: ignore[method-assign]
    raw = RawMail(mailbox_id="1", mailbox_address="a@example.com", owner_kind="user",
                  folder="INBOX", direction="incoming", protocol="imap",
                  fetched_at=datetime(2026, 12, 3, tzinfo=UTC), size=size,
                  uidvalidity=1, uid=7, content=b"x" * size)
    put: list[bytes] = []
    record, value = claim_check(settings, codec, raw, lambda data: put.append(data) or "ab" * 32)
    assert codec.decode_record(value, RawMail) == record
    if by_claim_check:
        assert record.blob_ref == "ab" * 32 and record.content is None and put == [raw.content]
        assert encoded == [record]  # too big to try: only the reference is encoded
    else:
        assert record is raw and put == []
        assert encoded == [raw]  # measured and sent: one encoding
