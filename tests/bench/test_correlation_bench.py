"""bench/correlation.py: its scoring on a hand-made record set, and the bench itself on the
real stack with the replies before their originals (a check, not a measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.correlation import score  # noqa: E402
from bench.labelled import Message  # noqa: E402


def message(mid: str, thread: str, customer: str, sender: str, depth: int = 1,
            category: str = "in_reply_to") -> Message:
    return Message(mid, thread, category, customer, depth, False,
                   f"From: {sender}\nSubject: x\n\nx\n".encode())


SET = [
    message("a1", "A", "acc-1", "ann@c1.example", 0, "new"),
    message("a2", "A", "acc-1", "ann@c1.example"),
    message("a3", "A", "", "agent@ours.example"),  # our staff: in any thread
    message("b1", "B", "acc-2", "ben@c2.example", 0, "new"),
    message("x1", "X", "acc-2", "ben@c2.example", 3, "trap_in_reply_to"),
]


def test_a_right_record_set_scores_one() -> None:
    got = score(SET, [("a1", None, "", ""), ("a2", "a1", "in_reply_to", ""),
                      ("a3", "a2", "in_reply_to", ""), ("b1", None, "", ""),
                      ("x1", None, "", "in_reply_to a1 → activity 1: refused")])
    assert (got["precision"], got["recall"], got["cross_customer_pairs"]) == (1.0, 1.0, 0)
    assert got["refused"] == 1 and got["first_emails_as_children"] == 0
    assert got["methods"]["in_reply_to"] == {"links": 2, "right": 2, "precision": 1.0}


def test_a_trap_linked_across_customers_and_an_inverted_original_are_counted() -> None:
    got = score(SET, [("a1", "a2", "token", ""), ("a2", None, "", ""),
                      ("a3", None, "", ""), ("b1", None, "", ""),
                      ("x1", "a1", "in_reply_to", "")])
    # Recorded thread {a1, a2, x1}: pairs a1-a2 right, a1-x1 and a2-x1 wrong; a3 left out.
    assert got["pairs"] == {"recorded": 3, "true": 3, "right": 1}
    assert got["cross_customer_pairs"] == 2  # x1 (acc-2) with a1 and a2 (acc-1)
    assert got["first_emails_as_children"] == 1
    assert got["methods"]["in_reply_to"]["precision"] == 0.0
    assert got["categories"]["trap_in_reply_to"] == {"emails": 1, "right": 0}


@pytest.mark.integration
def test_the_bench_finds_every_thread_with_replies_before_their_originals() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "correlation.py"), "--scale", "1",
         "--orders", "reverse"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = json.loads(done.stdout.strip().splitlines()[-1])["runs"]
    assert (run["precision"], run["recall"], run["cross_customer_pairs"]) == (1.0, 1.0, 0)
    assert run["refused"] == 30 and run["dead_letters"] == 0
