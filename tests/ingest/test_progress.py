from hypothesis import given
from hypothesis import strategies as st

from ingest.progress import UidProgress, batches, fetch_groups, pop3_new


def test_checkpoint_stops_before_first_unacked_uid() -> None:
    p = UidProgress(start=10)
    for uid in (11, 12, 15, 16):
        p.send(uid)
    for uid in (11, 15, 16):
        p.ack(uid)
    assert p.checkpoint() == 11
    p.ack(12)
    assert p.checkpoint() == 16
    assert p.acked_up_to_checkpoint() == [11, 12, 15, 16]


def test_nothing_acked_keeps_the_old_checkpoint() -> None:
    p = UidProgress(start=7)
    p.send(9)
    assert p.checkpoint() == 7
    assert p.acked_up_to_checkpoint() == []


@given(st.sets(st.integers(1, 500), min_size=1), st.data())
def test_every_uid_up_to_checkpoint_was_acked(sent: set[int], data: st.DataObject) -> None:
    acked = data.draw(st.sets(st.sampled_from(sorted(sent))))
    p = UidProgress(start=0)
    for uid in sorted(sent):
        p.send(uid)
    for uid in acked:
        p.ack(uid)
    cp = p.checkpoint()
    assert all(uid in acked for uid in sent if uid <= cp)
    # maximal: the next sent UID above the checkpoint is not acked
    above = [u for u in sorted(sent) if u > cp]
    assert not above or above[0] not in acked


def test_pop3_new_is_a_set_difference_in_server_order() -> None:
    assert pop3_new({1: "a", 2: "b", 3: "c"}, {"b"}) == [(1, "a"), (3, "c")]


def test_batches_bounded_by_count_and_bytes() -> None:
    uids = list(range(1, 8))
    small = dict.fromkeys(uids, 10)
    assert batches(uids, small, max_count=3, max_bytes=1000) == [[1, 2, 3], [4, 5, 6], [7]]
    sizes = {1: 400, 2: 400, 3: 400, 4: 5000, 5: 100, 6: 100, 7: 100}
    # bytes close a batch early; a message above the budget travels alone, never skipped
    assert batches(uids, sizes, max_count=100, max_bytes=1000) == [
        [1, 2], [3], [4], [5, 6, 7]]
    assert batches([], {}, max_count=3, max_bytes=10) == []


def test_a_dead_lettered_uid_is_passed_without_a_server_action() -> None:
    p = UidProgress(start=0)
    p.send(1)
    p.pass_over(2)
    p.send(3)
    p.ack(1)
    assert p.checkpoint() == 2  # past the dead letter, up to the first unacked
    p.ack(3)
    assert p.checkpoint() == 3
    assert p.acked_up_to_checkpoint() == [1, 3]  # never flag, move or delete what was not sent


def test_suspects_are_fetched_alone_in_order() -> None:
    uids = list(range(1, 9))
    sizes = dict.fromkeys(uids, 10)
    assert fetch_groups(uids, sizes, 3, 1000, alone={3, 4, 8}) == [
        [1, 2], [3], [4], [5, 6, 7], [8]]
    assert fetch_groups(uids, sizes, 3, 1000, alone=set()) == batches(uids, sizes, 3, 1000)
