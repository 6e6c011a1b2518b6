"""The blob store against the real PostgreSQL: streaming, idempotence, concurrency."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

from mailroom.blobs import BlobMissing, BlobStore, _rechunk
from mailroom.db import connect


def test_rechunk_regroups_any_split_into_fixed_chunks() -> None:
    pieces = [b"ab", b"", b"cdefg", b"h"]
    assert list(_rechunk(pieces, 3)) == [b"abc", b"def", b"gh"]
    assert list(_rechunk([], 3)) == []


@pytest.mark.integration
def test_30_mb_blob_streams_through_byte_identical(db_conn) -> None:
    store = BlobStore(db_conn)
    block = os.urandom(1 << 20)
    expected = hashlib.sha256()

    def source():
        # 30 MB generated on the fly, in pieces that do not line up with the store's chunks,
        # so neither side ever holds the whole object.
        for i in range(30):
            piece = block[i:] + block[:i]
            expected.update(piece)
            yield piece[:700_000]
            yield piece[700_000:]

    sha = store.put_stream(source())
    assert sha == expected.hexdigest()
    assert store.exists(sha)
    assert store.size(sha) == 30 << 20

    got = hashlib.sha256()
    largest = 0
    for chunk in store.open(sha):
        got.update(chunk)
        largest = max(largest, len(chunk))
    assert got.hexdigest() == sha
    assert largest <= store.chunk_size


@pytest.mark.integration
def test_double_put_is_idempotent(db_conn) -> None:
    store = BlobStore(db_conn)
    data = os.urandom(2_500_000)
    first = store.put(data)
    second = store.put_stream([data[:10], data[10:]])
    assert first == second == hashlib.sha256(data).hexdigest()
    assert store.get(first) == data
    rows = db_conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    chunks = db_conn.execute("SELECT count(*) FROM blob_chunks").fetchone()[0]
    assert (rows, chunks) == (1, 3)  # no leftover upload chunks


@pytest.mark.integration
def test_empty_blob(db_conn) -> None:
    store = BlobStore(db_conn)
    sha = store.put(b"")
    assert store.get(sha) == b""


@pytest.mark.integration
def test_concurrent_puts_of_the_same_content_both_succeed(base_settings, db_schema) -> None:
    data = os.urandom(3_000_000)
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            with connect(base_settings, schema=db_schema, autocommit=True) as conn:
                store = BlobStore(conn)

                def pieces():
                    yield data[:1_000_000]
                    # Both uploads are now mid-stream, so both reach the final insert
                    # with the blob absent when they started.
                    barrier.wait(timeout=10)
                    yield data[1_000_000:]

                results.append(store.put_stream(pieces()))
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert results == [hashlib.sha256(data).hexdigest()] * 2
    with connect(base_settings, schema=db_schema, autocommit=True) as conn:
        assert BlobStore(conn).get(results[0]) == data
        assert conn.execute("SELECT count(*) FROM blob_chunks").fetchone()[0] == 3


@pytest.mark.integration
def test_missing_blob_is_a_clear_permanent_error(db_conn) -> None:
    store = BlobStore(db_conn)
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(absent)
    with pytest.raises(BlobMissing, match=absent):
        store.get(absent)
    with pytest.raises(BlobMissing):
        store.open(absent)  # raised at once, not on the first next()
    assert store.touch([absent]) == 0


@pytest.mark.integration
def test_retention_deletes_only_unreferenced_old_blobs(db_conn) -> None:
    store = BlobStore(db_conn)
    old = store.put(b"old")
    kept = store.put(b"kept")
    db_conn.execute(
        "UPDATE blobs SET last_referenced_at = now() - interval '40 days' WHERE sha256 = %s",
        (old,),
    )
    assert store.delete_unreferenced_older_than(datetime.now(UTC) - timedelta(days=30)) == 1
    assert not store.exists(old)
    assert store.get(kept) == b"kept"
    assert db_conn.execute("SELECT count(*) FROM blob_chunks").fetchone()[0] == 1


@pytest.mark.integration
def test_blob_store_inside_a_callers_transaction_rolls_back_with_it(db_conn) -> None:
    store = BlobStore(db_conn)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), db_conn.transaction():
        sha = store.put(b"claim check")
        assert store.exists(sha)
        raise Abort
    assert not store.exists(sha)
