"""A part's base64 body decoded with as few copies as the stdlib's result allows.

``Message.get_payload(decode=True)`` on a base64 body encodes the text twice (once only to see
whether it holds surrogates), splits it into a list of line objects and joins them again before
decoding: for a 50 MB attachment ~280 MB of peak memory in the worker, the largest share of
unwrap's peak with big mail. Here: well-formed base64 is decoded straight from the text
(binascii skips the line breaks: no encoded copy at all; whether it is well-formed is checked
a megabyte at a time); anything else is the ASCII text
encoded once, line breaks deleted in one pass (``bytes.translate``: the same bytes as joining
``splitlines()``), decoded. Either way the same bytes and the same defects on the part as the
stdlib's, which the tests check on valid, mispadded, malformed and truncated input. Anything
else (not ASCII, another encoding) is left to the stdlib.
"""

from __future__ import annotations

import base64
import binascii
import re
from email import errors
from email.message import Message

# What the stdlib's strict decode accepts once line ends are deleted: ``[A-Za-z0-9+/]*={0,2}``.
# (The definition; :func:`well_formed` decides the same faster.)
_CLEAN = re.compile(r"[A-Za-z0-9+/\r\n]*(?:=[\r\n]*){0,2}")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TAIL_CHARS = "=\r\n"
#: Characters of the text checked at a time: small enough that no copy of a large body is
#: made, large enough that the per-slice work is nothing beside the bytes.
CHUNK = 1 << 20
_TAIL_WINDOW = 64


def base64_body(part: Message) -> bytes | None:
    """The decoded body of a base64 leaf part, or None when the stdlib should decode it."""
    if part.is_multipart():
        return None
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    payload = part.get_payload()
    if not isinstance(payload, str) or not payload.isascii():
        return None
    if well_formed(payload):
        # Well-formed (the alphabet, line ends, padding only at the end, whole quads): the
        # stdlib's strict decode succeeds with no defect, and binascii reads the text itself,
        # skipping the line ends.
        return binascii.a2b_base64(payload)
    encoded = payload.encode("ascii").translate(None, b"\r\n")
    value, defects = _decode(encoded)
    for defect in defects:
        part.policy.handle_defect(part, defect)
    return value


def well_formed(text: str, chunk: int = CHUNK) -> bool:
    """Whether ASCII ``text`` is the alphabet and line ends, then at most two ``=`` of padding
    (line ends between them allowed), making whole quads: ``_CLEAN`` and the quad count.

    Byte by byte in C (``bytes.translate`` deletes the allowed characters: nothing may remain),
    a slice at a time: about a quarter of the regular expression's CPU on a large body.
    """
    # The padding: the run of '=' and line ends at the end (found in a window, not by stripping
    # the whole text, which would copy it).
    window = text[-_TAIL_WINDOW:]
    kept = window.rstrip(_TAIL_CHARS)
    if not kept and len(text) > len(window):  # a tail longer than the window: rare, exact
        return bool(_CLEAN.fullmatch(text)) and (
            len(text) - text.count("\r") - text.count("\n")) % 4 == 0
    body_end = len(text) - len(window) + len(kept)
    pads = window.count("=", len(kept))
    if pads > 2:
        return False
    quads = pads
    for start in range(0, body_end, chunk):
        data = text[start:min(start + chunk, body_end)].encode("ascii").translate(None, b"\r\n")
        if data.translate(None, _ALPHABET):
            return False  # a character outside the alphabet (or padding before the end)
        quads += len(data)
    return quads % 4 == 0


def _decode(encoded: bytes) -> tuple[bytes, list[errors.MessageDefect]]:
    """The stdlib's ``decode_b`` (email._encoded_words), step for step."""
    pad_err = len(encoded) % 4
    missing_padding = b"==="[: 4 - pad_err] if pad_err else b""
    try:
        return (base64.b64decode(encoded + missing_padding if pad_err else encoded,
                                 validate=True),
                [errors.InvalidBase64PaddingDefect()] if pad_err else [])
    except binascii.Error:
        pass
    try:
        return base64.b64decode(encoded, validate=False), [errors.InvalidBase64CharactersDefect()]
    except binascii.Error:
        pass
    try:
        return (base64.b64decode(encoded + b"==", validate=False),
                [errors.InvalidBase64CharactersDefect(), errors.InvalidBase64PaddingDefect()])
    except binascii.Error:
        return encoded, [errors.InvalidBase64LengthDefect()]
