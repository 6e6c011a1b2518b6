"""Everything one pass over one mailbox needs, passed explicitly (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from ingest.model import Folder, Mailbox, Profile
from ingest.publish import BlobPut, Producer
from mailroom.codec import Codec
from mailroom.records.raw import RawMail
from mailroom.settings import Settings


@dataclass
class Job:
    settings: Settings
    conn: psycopg.Connection  # ingest's tables; committed by the ingestors at each checkpoint
    profile: Profile
    mailbox: Mailbox
    generation: int  # fence token: checkpoint writes fail once another process owns the mailbox
    codec: Codec
    producer: Producer
    put_blob: BlobPut
    # Called between batches; raises (e.g. ``Revoked``) when the pass must stop after the
    # batch in hand: a rebalance took the mailbox away, or the process is shutting down.
    between_batches: Callable[[], None] = field(default=lambda: None)
    # Messages the broker acknowledged in this pass so far (for metrics: counted even when
    # the pass stops early on a revocation).
    published: int = 0
    # The pass ended well and wrote the status ``ok`` (then the status need not be read back).
    ended_ok: bool = False

    @property
    def mailbox_id(self) -> int:
        assert self.mailbox.id is not None
        return self.mailbox.id

    def raw(self, folder: Folder, content: bytes, **coordinates: object) -> RawMail:
        from mailroom.records.base import now_millis

        m = self.mailbox
        return RawMail(
            mailbox_id=str(self.mailbox_id), mailbox_address=m.address,
            owner_kind=m.owner_kind.value, owner_id=m.owner_id or None,  # type: ignore[arg-type]
            folder=folder.name, direction=folder.direction.value,  # type: ignore[arg-type]
            protocol=self.profile.protocol.value,  # type: ignore[arg-type]
            fetched_at=now_millis(), size=len(content), content=content,
            **coordinates,  # type: ignore[arg-type]
        )
