"""The Sensitivity header reaches route as a marker, for a direct and a forwarded original —
the forwarded original's own header, not the forward's."""

from __future__ import annotations

from unwrap_helpers import direct, fixture, forwarded

from mailroom.records.email import Email


def _marked(data: bytes, value: str) -> bytes:
    return f"Sensitivity: {value}\r\n".encode() + data


def test_direct_mail_keeps_its_sensitivity() -> None:
    [email] = direct(_marked(fixture("original.eml"), "Private"))
    assert email.markers.sensitivity == "Private"
    [plain] = direct("original.eml")
    assert plain.markers.sensitivity is None


def test_a_forwards_own_sensitivity_is_not_the_originals() -> None:
    result = forwarded(_marked(fixture("fwd_rfc822_outlook.eml"), "Company-Confidential"))
    assert isinstance(result, list) and result
    assert all(isinstance(e, Email) and e.markers.sensitivity is None for e in result)
