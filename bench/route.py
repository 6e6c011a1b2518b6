"""bench/route: emails planned per second by one process (the pure core plus Avro encoding).

    .venv/bin/python bench/route.py [N]

No broker: this measures what the stage's handler costs per email, which bounds what one
route process can do; the runner adds the Kafka round trips.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# This file is named route.py: its own folder must not shadow the route package.
_REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests" / "route"))

from routebuild import config, email, reference  # noqa: E402

from mailroom.codec import Codec  # noqa: E402
from route.plan import plan  # noqa: E402


def main(n: int = 20_000) -> None:
    codec = Codec.load(Path(__file__).resolve().parents[1] / "schemas")
    ref, cfg = reference(), config(correlation={"smart": True})
    mails = [
        email(message_id=f"m{i}@customer.example", subject=f"Re: urgent CRM:{1000 + i:07d}",
              in_reply_to=f"p{i}@acme.example", references=(f"a{i}@x", f"p{i}@acme.example"),
              cc=("bob@acme.example",), body="x" * 2000)
        for i in range(200)
    ]
    encoded = [codec.encode_record(m) for m in mails]
    start = time.perf_counter()
    for i in range(n):
        j = i % len(mails)
        codec.encode_record(plan(codec.decode_record(encoded[j], type(mails[j])), ref, cfg,
                                 encoded[j]))
    took = time.perf_counter() - start
    print(f"route: {n / took:,.0f} emails/s (decode Email + plan + encode Plan, one process)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
