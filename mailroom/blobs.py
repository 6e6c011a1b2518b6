"""Content-addressed blob store in PostgreSQL, for claim checks.

A record too large for its topic carries the sha256 (hex) of its bulky content instead; the
content lives here once, however many records point at it. Blobs are stored as ~1 MB chunks
(``blob_chunks``) under a ``blobs`` row holding size and chunk count, so writing and reading a
50 MB message streams: at most one chunk (plus the caller's own buffer) is in memory.

How a put stays correct under concurrency: the hash is only known after the last chunk, so a
streaming put writes its chunks under a private key ``upload:<uuid>``, all in one transaction.
At the end it inserts the ``blobs`` row with ``ON CONFLICT DO NOTHING``. If the insert wins, the
chunks are renamed to the hash in that same transaction; if the content already exists (or a
concurrent put of the same content commits first — PostgreSQL makes the second insert wait for
the first's outcome), the private chunks are dropped and the existing blob is touched instead.
Either way both callers get the same hash and no error, and a blob that is visible is complete.
A crash mid-upload rolls the transaction back, leaving nothing behind.

Every put moves ``last_referenced_at``, also when the content is already stored (``touch``):
it is the clock of condemned blobs (``condemned_at``, set for mail that must not be kept), which
persist deletes only once their content was not put for a grace (:mod:`persist.privacy`). A put
that skipped it could let an email still in flight lose its bytes.

Every method runs in ``conn.transaction()``: on an autocommit connection each call is its own
transaction; inside a caller's transaction it is a savepoint that commits with the caller's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, Protocol

import psycopg

from mailroom.errors import PermanentError

CHUNK_SIZE = 1024 * 1024


class BlobMissing(PermanentError):  # noqa: N818 - the name says what it is
    """The blob a claim check points at is not in the store (expired, or never written)."""

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        super().__init__(f"blob {sha256} is not in the blob store (expired or never stored)")


class BlobCorrupt(PermanentError):  # noqa: N818 - the name says what it is
    """The stored chunks do not add up to the blob they claim to be."""


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a lower-case hex sha256: {sha256!r}")
    return sha256


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup arbitrary pieces into chunks of exactly ``size`` bytes (the last may be short),
    so the stored layout does not depend on how the caller happened to split its data."""
    buffer = bytearray()
    for piece in chunks:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class Blobs(Protocol):
    """The blob store as its users see it: :class:`BlobStore` is the one implementation (tests
    may pass a stand-in that records calls)."""

    def put(self, data: bytes) -> Any: ...

    def get(self, sha256: str) -> Any: ...

    def exists(self, sha256: str) -> bool: ...


class BlobStore:
    """Blobs in the connection's current schema. The connection is the caller's."""

    def __init__(self, conn: psycopg.Connection, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.conn = conn
        self.chunk_size = chunk_size

    # --- writing ------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent); return its sha256 hex."""
        sha256 = hashlib.sha256(data).hexdigest()
        if self.touch([sha256]):
            return sha256  # already stored: no need to send the bytes again
        view = memoryview(data)
        return self.put_stream(
            view[i : i + self.chunk_size] for i in range(0, len(view), self.chunk_size)
        )

    def put_file(self, fileobj: BinaryIO) -> str:
        """Store everything read from a binary file object, chunk by chunk."""
        return self.put_stream(iter(lambda: fileobj.read(self.chunk_size), b""))

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        """Store the concatenation of ``chunks`` (any sizes), hashing while writing."""
        upload_key = f"upload:{uuid.uuid4()}"
        digest = hashlib.sha256()
        size = 0
        count = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            for chunk in _rechunk(chunks, self.chunk_size):
                digest.update(chunk)
                cur.execute(
                    "INSERT INTO blob_chunks (sha256, seq, data) VALUES (%s, %s, %b)",
                    (upload_key, count, chunk),
                )
                size += len(chunk)
                count += 1
            sha256 = digest.hexdigest()
            cur.execute(
                "INSERT INTO blobs (sha256, size, chunk_count) VALUES (%s, %s, %s) "
                "ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
                (sha256, size, count),
            )
            if cur.fetchone() is not None:
                cur.execute(
                    "UPDATE blob_chunks SET sha256 = %s WHERE sha256 = %s", (sha256, upload_key)
                )
            else:
                cur.execute("DELETE FROM blob_chunks WHERE sha256 = %s", (upload_key,))
                cur.execute(
                    "UPDATE blobs SET last_referenced_at = now() WHERE sha256 = %s", (sha256,)
                )
        return sha256

    def touch(self, shas: Iterable[str]) -> int:
        """Mark blobs as referenced now (extends their retention); return how many exist."""
        wanted = [_check_sha(s) for s in shas]
        if not wanted:
            return 0
        with self.conn.transaction():
            cur = self.conn.execute(
                "UPDATE blobs SET last_referenced_at = now() WHERE sha256 = ANY(%s)", (wanted,)
            )
            return cur.rowcount

    def delete_unreferenced_older_than(self, cutoff: datetime) -> int:
        """Delete blobs last referenced before ``cutoff``; return how many.

        Safe against a concurrent put of the same content: the put's touch and this delete
        lock the same ``blobs`` row, so either the put sees the row gone and stores the blob
        afresh, or the delete sees the new ``last_referenced_at`` and keeps it.
        """
        with self.conn.transaction():
            gone = self.conn.execute(
                "DELETE FROM blobs WHERE last_referenced_at < %s RETURNING sha256", (cutoff,)
            ).fetchall()
            shas = [row[0] for row in gone]
            if shas:
                self.conn.execute("DELETE FROM blob_chunks WHERE sha256 = ANY(%s)", (shas,))
        return len(shas)

    # --- reading ------------------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT 1 FROM blobs WHERE sha256 = %s", (_check_sha(sha256),)
            ).fetchone()
        return row is not None

    def size(self, sha256: str) -> int:
        return self._header(sha256)[0]

    def get(self, sha256: str) -> bytes:
        """The whole blob in memory; use :meth:`open` for large ones."""
        return b"".join(self.open(sha256))

    def open(self, sha256: str) -> Iterator[bytes]:
        """Stream the blob chunk by chunk, checking its sha256 and size at the end.

        Raises :class:`BlobMissing` at once (not at the first ``next()``) when it is absent.
        """
        size, count = self._header(sha256)
        return self._chunks(sha256, size, count)

    def _header(self, sha256: str) -> tuple[int, int]:
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT size, chunk_count FROM blobs WHERE sha256 = %s", (_check_sha(sha256),)
            ).fetchone()
        if row is None:
            raise BlobMissing(sha256)
        return int(row[0]), int(row[1])

    def _chunks(self, sha256: str, size: int, count: int) -> Iterator[bytes]:
        # One query per chunk rather than one cursor over all of them: memory stays at one
        # chunk whatever the driver buffers, and no transaction is held open while the
        # consumer of this iterator takes its time. Blobs never change once written.
        digest = hashlib.sha256()
        total = 0
        for seq in range(count):
            with self.conn.transaction():
                row = self.conn.execute(
                    "SELECT data FROM blob_chunks WHERE sha256 = %s AND seq = %s",
                    (sha256, seq),
                    binary=True,
                ).fetchone()
            if row is None:
                raise BlobCorrupt(f"blob {sha256}: chunk {seq} of {count} is missing")
            data: bytes = row[0]
            digest.update(data)
            total += len(data)
            yield data
        if total != size or digest.hexdigest() != sha256:
            raise BlobCorrupt(
                f"blob {sha256}: stored chunks give {total} bytes with sha256 "
                f"{digest.hexdigest()}, expected {size} bytes"
            )
