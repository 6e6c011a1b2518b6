"""One list of reply and forward prefixes: whatever makes smart matching see a reply is also
stripped from the subject before it is hashed, so the reply's hash is its original's."""

from __future__ import annotations

import pytest

from route.mail import REPLY_PREFIX, REPLY_PREFIXES, base_subject, subject_hash
from route.tokens import TokenFormat

TOKENS = TokenFormat()


@pytest.mark.parametrize("prefix", REPLY_PREFIXES)
def test_every_prefix_the_reply_check_knows_is_stripped_before_hashing(prefix: str) -> None:
    for written in (f"{prefix}:", f"{prefix.upper()}:", f"{prefix}[2]:", f"{prefix}(3):",
                    f"{prefix}. :", f"{prefix}：", f" {prefix} :"):
        subject = f"{written} Printer broken"
        assert REPLY_PREFIX.match(subject), written
        assert base_subject(subject, TOKENS) == "printer broken", written
        assert subject_hash(subject, TOKENS) == subject_hash("Printer broken", TOKENS)


def test_prefixes_in_any_mix_and_with_a_token_between_them() -> None:
    subject = "RE: AW: Odp: CRM:0001234 回复：Fwd: Printer  BROKEN"
    assert base_subject(subject, TOKENS) == "printer broken"


def test_a_word_that_starts_like_a_prefix_is_kept() -> None:
    for subject in ("Reboot: printer broken", "Ireland: printer broken", "Refund: order 7"):
        assert not REPLY_PREFIX.match(subject)
        assert base_subject(subject, TOKENS) == subject.lower()
