"""A host lost with all its processes, on the three-broker cluster: two simulated hosts run the
four stages of one deployment (each its own state folder, ports and log folder), the host whose
ingest polls the forward mailbox is SIGKILLed whole while mail is on its way, and every consumer
group — ingest's mailboxes included — ends up held by the other host's members alone. Then more
mail comes, and the chaos suite's exact checks hold: every mail exactly one activity, no
duplicate rows, no dead letters, lag 0, nothing unacknowledged on the mail server
(``chaoslib.hosts``; ``bench/hosts.py`` prints the same run's figures).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from chaoslib import hosts
from chaoslib.preconditions import skip_unless_seedable

from mailroom.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

MAILS = 400  # two halves of 200: one before the loss, one after


def test_a_lost_hosts_partitions_move_to_the_other_host_and_nothing_is_lost(
    kafka_cluster: Settings, tmp_path: Path,
) -> None:
    skip_unless_seedable(kafka_cluster)
    seed = random.SystemRandom().randrange(1, 10**6)
    figures: list[str] = []
    try:
        result = hosts.run(kafka_cluster, mails=MAILS, seed_value=seed,
                           log_dir=tmp_path / "hosts", say=figures.append)
    finally:
        print("\n".join(["", *figures]))  # shown with -s or -rP: the run's figures
    repeat = f"seed {seed}; stage logs in {result.log_dir}"
    # Both hosts held partitions of every group before the loss...
    assert set(result.before) == set(hosts.STAGES), (result.before, repeat)
    assert all(len(found) == 2 for found in result.before.values()), (result.before, repeat)
    # ...and the survivor's members alone hold every partition after it.
    assert set(result.moved_s) == set(hosts.STAGES), (result.moved_s, repeat)
    assert result.victim != result.survivor
    failed = result.failed
    assert not failed, "\n".join([f"{c.name}: {c.detail}" for c in failed] + [repeat])
    assert result.stop_codes == {f"{result.survivor}/{s}": 0 for s in hosts.STAGES}, (
        f"SIGTERM at the end: the survivor's stages exit 0: {result.stop_codes}; {repeat}")
