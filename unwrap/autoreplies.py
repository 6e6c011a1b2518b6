"""Auto-replies (out-of-office notes, vacation and "we got your mail" responders): headers only.

What marks one, strongest first; ``detail`` says which it was:

* ``Auto-Submitted: auto-replied`` (RFC 3834 section 5: a reply made by a responder). The
  other value, ``auto-generated``, marks notifications that reply to nothing: route treats them
  as automated mail already, but they are no auto-reply;
* ``X-Autoreply`` (any value but ``no``) and ``X-Autorespond``: what vacation programs,
  cPanel and many hosted responders set;
* ``Precedence: auto_reply`` (older responders);
* an auto-reply subject prefix, in the languages Outlook, Exchange, Gmail and the common hosted
  responders write it ("Automatic reply:", "Abwesenheitsnotiz:", "Réponse automatique :", …).
  Exchange marks its out-of-office replies with that prefix and ``X-Auto-Response-Suppress:
  All``; the header alone is no sign — it is a *request* to suppress responses that lists,
  meeting invites and ticket systems send too (MS-OXCMAIL 2.1.3.2.20).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mailroom.records.email import Report
from unwrap.parse import quick_text

# Subject prefixes, case-insensitive, at the start of the subject (after "Re:"-like noise is
# not allowed: a person's reply to an auto-reply is a person's mail).
_PREFIXES = (
    "automatic reply", "auto reply", "auto-reply", "autoreply", "auto response",
    "auto-response", "autoresponse", "automatic response", "out of office", "out of the office",
    "out of office autoreply", "abwesenheitsnotiz", "automatische antwort",
    "réponse automatique", "reponse automatique", "respuesta automática",
    "respuesta automatica", "risposta automatica", "automatisch antwoord",
    "resposta automática", "resposta automatica", "automatyczna odpowiedź",
    "automatická odpověď", "automatické odpovědi", "автоматический ответ", "автоответ",
    "autosvar", "automatisk svar", "automatisch svar", "automaattinen vastaus",
    "automatikus válasz", "răspuns automat", "otomatik yanıt", "αυτόματη απάντηση",
    "自動応答", "自动回复", "自動回覆", "자동 회신",
)
_SUBJECT = re.compile(
    r"^\s*(?:" + "|".join(re.escape(p) for p in _PREFIXES) + r")\s*[:：]", re.IGNORECASE)


#: The headers :func:`detect` reads (``parse.first_raw`` collects them in one pass).
HEADERS = frozenset({"auto-submitted", "x-autoreply", "x-autorespond", "precedence", "subject"})


def detect(heads: Mapping[str, str]) -> Report | None:
    """An ``auto_reply`` report naming its marker, or None. ``heads``: the first raw value of
    each of :data:`HEADERS` present (``parse.first_raw``)."""
    if not heads:
        return None
    submitted = quick_text(heads.get("auto-submitted")).split(";")[0].strip().lower()
    if submitted == "auto-replied":
        return Report("auto_reply", "Auto-Submitted: auto-replied")
    value = quick_text(heads.get("x-autoreply")).strip()
    if value and value.lower() != "no":
        return Report("auto_reply", f"X-Autoreply: {value[:100]}")
    value = quick_text(heads.get("x-autorespond")).strip()
    if value:
        return Report("auto_reply", f"X-Autorespond: {value[:100]}")
    if quick_text(heads.get("precedence")).strip().lower() in ("auto_reply", "auto-reply"):
        return Report("auto_reply", "Precedence: auto_reply")
    subject = quick_text(heads.get("subject"))
    match = _SUBJECT.match(subject)
    if match:
        return Report("auto_reply", f"subject {match.group(0).strip()!r}")
    return None
