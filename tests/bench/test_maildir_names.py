"""The bench names Maildir files as Dovecot's own delivery does: names Dovecot can tell apart
cheaply, with the sizes it trusts from the name."""

from __future__ import annotations

from collections import Counter

from bench.harness import maildir_name


def dovecot_name_hash(name: str) -> int:
    """Dovecot's ``maildir_filename_base_hash`` (lib-storage, maildir-filename.c): the PJW hash
    of the name up to the ``:`` that starts its flags; its uidlist table looks files up by it."""
    h = 0
    for ch in name.split(":", 1)[0]:
        h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
        if g := h & 0xF0000000:
            h ^= g >> 24
            h ^= g
    return h


def test_the_names_of_a_large_delivery_do_not_share_dovecots_hash_buckets() -> None:
    names = [maildir_name(1796441625.7279, n, b"x" * 27_000) for n in range(12_000)]
    assert len(set(names)) == len(names)
    buckets = Counter(dovecot_name_hash(name) for name in names)
    # The names this replaced (same tail, a counter inside) shared buckets by the thousand.
    assert max(buckets.values()) <= 3, buckets.most_common(3)


def test_a_name_carries_the_file_size_and_the_size_imap_reports() -> None:
    data = b"Subject: hi\n\nline one\nline two\n"
    name = maildir_name(1796441625.5, 7, data)
    assert name.startswith("1796441625.M500000P")
    assert "Q7." in name
    size, vsize = name.rsplit(",S=", 1)[1].split(",W=")
    assert int(size) == len(data)
    assert int(vsize) == len(data.replace(b"\n", b"\r\n"))


def test_a_line_that_still_ends_in_cr_lf_is_not_counted_twice() -> None:
    data = b"Subject: hi\n\nodd line\r\nnext\n"  # a CR CR LF in the mail, after CRLF -> LF
    vsize = maildir_name(1796441625.5, 8, data).rsplit(",W=", 1)[1]
    assert int(vsize) == len(data) + 3  # three bare LFs; the CR LF is two bytes already
