"""The mailbox directory as a stage's handler sees it: a copy the runner keeps current.

Unwrap and route decide with the mailbox configuration (:mod:`mailroom.mailboxes`: the compacted
``mailboxes`` topic). Their handlers run in worker processes, and a reader of the topic is a
Kafka client — kafka-python imported and a consumer per process, ~13 MB each. So the *runner*
reads the directory, once per process, and its workers hold a copy:

- :class:`MailboxFeed` (runner): before the handler sees any record of a poll batch, the runner
  reads the directory to the topic's end and, when the mapping changed, hands the executor the
  :class:`MailboxChanges` — the whole directory the first time, then only the mailboxes
  changed or deleted;
- the executor sends them down each worker's pipe ahead of the batch's records (a worker
  started later gets the whole copy before its first record), and :class:`MailboxCopy` in the
  worker applies them and gives the handler the new mapping (:class:`MailboxReader`).

Why that is fresh enough — the directory's guarantee (:mod:`mailroom.mailboxes`) kept: every
record of the batch was written before the poll returned it, and a mailbox record that mail
depends on was acknowledged before that mail was written (a mailbox added, approved, or made a
forwarder, is published before any mail that needs it exists). The read starts after the poll
returned, so it reaches past every such record: the copy each worker holds is fresh for every
record of the batch, with no clock involved. A read that fails (broker away, an unreadable
record) is an outage of the batch: it is redone once the directory can be read
(:class:`~mailroom.stage.loop.Dependencies`), never decided with an older copy.

This module imports no Kafka client: the workers load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from mailroom.records.mailbox import MailboxRecord

Mailboxes = Mapping[str, MailboxRecord]
_EMPTY: Mailboxes = MappingProxyType({})


@dataclass(frozen=True)
class MailboxChanges:
    """What to do to a copy of the directory to make it the runner's: the mailboxes added or
    changed (their latest records) and the ids deleted — or, ``whole``, the entire directory,
    replacing the copy (a worker's first, or one after a reread from the start)."""

    changed: Mailboxes = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    whole: bool = False

    @classmethod
    def of(cls, mailboxes: Mailboxes) -> MailboxChanges:
        return cls(dict(mailboxes), whole=True)

    @classmethod
    def between(cls, old: Mailboxes, new: Mailboxes) -> MailboxChanges:
        """What turns ``old`` into ``new``. A record the directory did not read again is the
        same object; a new one equal to the old (reread after a failure) is no change."""
        changed = {k: r for k, r in new.items()
                   if (was := old.get(k)) is not r and was != r}
        return cls(changed, frozenset(old.keys() - new.keys()))

    @property
    def empty(self) -> bool:
        return not (self.whole or self.changed or self.removed)

    def apply(self, copy: Mailboxes) -> Mailboxes:
        """A new read-only mapping: ``copy`` with these changes (``copy`` is left as it was)."""
        result = {} if self.whole else dict(copy)
        result.update(self.changed)
        for mailbox_id in self.removed:
            result.pop(mailbox_id, None)
        return MappingProxyType(result)


@runtime_checkable
class MailboxReader(Protocol):
    """A handler that decides with the mailbox directory (its spec says ``reads_mailboxes``).

    ``use_mailboxes`` is called with the whole current directory — a new mapping object each
    time it changed — before the handler sees any record the change may matter to. It must not
    raise nor do I/O (it runs between messages, outside any message's verdict): keep it, and
    derive what is needed from it when a message asks."""

    def use_mailboxes(self, mailboxes: Mailboxes) -> None: ...


@runtime_checkable
class MailboxSender(Protocol):
    """An executor that passes the directory's changes on to where its handler runs (both of
    :mod:`mailroom.stage.budget`'s executors)."""

    def send_mailboxes(self, changes: MailboxChanges) -> None: ...


class MailboxCopy:
    """The copy a handling process (a worker, or the runner inline) keeps, and gives its handler."""

    def __init__(self, handler: object) -> None:
        if not isinstance(handler, MailboxReader):
            raise TypeError(f"the stage reads mailboxes, but its handler "
                            f"{type(handler).__name__} has no use_mailboxes(mailboxes)")
        self.reader = handler
        self.mailboxes: Mailboxes = _EMPTY

    def apply(self, changes: MailboxChanges) -> None:
        self.mailboxes = changes.apply(self.mailboxes)
        self.reader.use_mailboxes(self.mailboxes)


class Directory(Protocol):
    """What the feed reads: :class:`mailroom.mailboxes.MailboxDirectory` (which the runner
    process makes; this module must not import it)."""

    def sync(self) -> Mailboxes: ...

    def close(self) -> None: ...


class MailboxFeed:
    """The runner's side: its one directory, and what it last handed the executor."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._sent: Mailboxes | None = None

    def changes(self) -> MailboxChanges | None:
        """Read the directory to the topic's end now; what changed since the last call (the
        whole directory on the first), None when nothing did. Raises what the directory's
        ``sync`` raises (:class:`~mailroom.mailboxes.DirectoryUnavailable`)."""
        now = self.directory.sync()
        if now is self._sent:  # the directory hands back the same mapping while nothing changed
            return None
        if self._sent is None:
            changes = MailboxChanges.of(now)
        else:
            changes = MailboxChanges.between(self._sent, now)
        self._sent = now
        return None if changes.empty else changes

    def close(self) -> None:
        self.directory.close()
