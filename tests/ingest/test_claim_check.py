"""Big messages travel by claim check: no record on the raw topic over the threshold."""

from __future__ import annotations

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, message, read_raw

from ingest.runner import Ingestor, blob_put
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def test_30mb_message_goes_by_claim_check(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    blobs = pytest.importorskip("mailroom.blobs", reason="the blob store is not built yet")
    user, password = mail_user
    big, small = message(1, size=30 * 1024 * 1024), message(2)
    append(db_settings, user, password, [big, small])
    add_mailbox(db, db_settings, user, password)
    with connect(db_settings, autocommit=True) as blob_conn:
        ing = Ingestor(db_settings, db, make_producer(db_settings), blob_put(blob_conn))
        assert ing.run_once() == 2
        raws = sorted(read_raw(db_settings, 2), key=lambda r: r.uid or 0)
        assert raws[0].content is None and raws[0].blob_ref and raws[0].size == len(big)
        assert raws[1].content == small and raws[1].blob_ref is None
        assert bytes(blobs.BlobStore(blob_conn).get(raws[0].blob_ref)) == big
