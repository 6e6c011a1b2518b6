"""Party resolution: which CRM record is behind each From/To/Cc/Bcc address?

Precedence user > contact > account > lead > queue; among records of the winning kind, those
owned by the mailbox owner win the tie. If more records than ``parties.max_matches`` still remain
the address stays unresolved (better no link than a wrong one); up to that many are all linked.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.records.email import Address, Email
from route.reference import PRECEDENCE, AddressMatch, RecordRef, ReferenceData

ROLES: tuple[str, ...] = ("from", "to", "cc", "bcc")


@dataclass(frozen=True)
class Resolution:
    role: str
    address: str
    name: str
    matches: tuple[AddressMatch, ...]  # the records linked; empty when unresolved
    outcome: str  # resolved | unknown | ambiguous
    detail: str

    @property
    def records(self) -> tuple[RecordRef, ...]:
        return tuple(m.record for m in self.matches)


def resolve(
    role: str, address: Address, reference: ReferenceData, owner: RecordRef | None,
    max_matches: int,
) -> Resolution:
    addr = address.address.strip().lower()
    found = reference.matches(addr)
    if not found:
        return Resolution(role, addr, address.name, (), "unknown", "no record has this address")
    best_kind = min((m.record.kind for m in found), key=PRECEDENCE.index)
    best = sorted((m for m in found if m.record.kind == best_kind), key=lambda m: m.record)
    why = f"{best_kind} beats other kinds" if len(found) > len(best) else best_kind
    if len(best) > 1 and owner is not None and owner.kind == "user":
        owned = [m for m in best if m.owner == owner.id or m.record == owner]
        if owned:
            best, why = owned, f"{why}; owned by the mailbox owner {owner}"
    if len(best) > max_matches:
        return Resolution(role, addr, address.name, (), "ambiguous",
                          f"{len(best)} {best_kind} records have this address "
                          f"(more than {max_matches}): left unresolved")
    return Resolution(role, addr, address.name, tuple(best), "resolved", why)


def resolve_all(
    email: Email, reference: ReferenceData, owner: RecordRef | None, max_matches: int
) -> list[Resolution]:
    result: list[Resolution] = []
    seen: set[tuple[str, str]] = set()
    groups = {"from": (email.from_address,) if email.from_address else (),
              "to": email.to, "cc": email.cc, "bcc": email.bcc}
    for role in ROLES:
        for address in groups[role]:
            key = (role, address.address.strip().lower())
            if key[1] and key not in seen:  # one party per role and address
                seen.add(key)
                result.append(resolve(role, address, reference, owner, max_matches))
    return result


def customer_of(resolution: Resolution | None) -> RecordRef | None:
    """The customer a resolved party stands for (a contact's account, or itself)."""
    if resolution is None or len(resolution.matches) != 1:
        return None
    match = resolution.matches[0]
    if match.record.kind in ("contact", "account", "lead"):
        return match.customer or match.record
    return None
