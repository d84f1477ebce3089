"""The seek fence: no stream record fetched before a move is delivered after it."""

from __future__ import annotations

from app.infra.seek_fence import SeekFence

P1 = ("omninode.events", 1)
P2 = ("omninode.events", 2)


def test_a_batch_fetched_before_a_rebalance_seek_is_dropped_and_read_again_from_the_commit() -> (
    None
):
    # The case measured: committed at 21, a stale fetch delivers 40 after the seek.
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.fetch_issued()
    fence.revoked([P1])
    fence.seek_started()
    fence.seek_finished({P1: 21})
    assert not fence.admit(P1, 40)
    assert fence.resume_at(P1) == 21
    fence.fetch_issued()
    assert fence.admit(P1, 21)
    assert fence.next_offset[P1] == 22
    assert fence.dropped == 1


def test_records_fetched_after_every_move_are_delivered_in_order() -> None:
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.seek_started()
    fence.seek_finished({P1: 5, P2: 0})
    fence.fetch_issued()
    assert [fence.admit(P1, offset) for offset in (5, 6, 7)] == [True, True, True]
    assert fence.admit(P2, 0)
    assert fence.next_offset == {P1: 8, P2: 1}
    assert fence.dropped == 0


def test_a_move_in_the_middle_of_a_batch_drops_the_rest_of_it() -> None:
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.fetch_issued()
    assert fence.admit(P1, 10)
    fence.moved()  # an assignment arrives while the batch is being delivered
    assert not fence.admit(P1, 11)
    assert not fence.admit(P2, 3)
    assert fence.resume_at(P1) == 11  # right after the last record delivered
    assert fence.resume_at(P2) is None  # nothing known: the next seek places it


def test_a_fetch_overlapping_a_seek_in_flight_is_dropped_and_not_sought_meanwhile() -> None:
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.seek_started()
    fence.fetch_issued()  # issued while the seek runs in the consumer thread
    fence.seek_finished({P1: 21})
    assert not fence.admit(P1, 40)
    fence.seek_started()
    assert fence.resume_at(P1) is None  # the seek in flight will place the partition
    fence.seek_finished({P1: 21})
    assert fence.resume_at(P1) == 21


def test_a_revoked_partition_forgets_where_it_was() -> None:
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.fetch_issued()
    assert fence.admit(P1, 3)
    fence.revoked([P1])
    assert fence.resume_at(P1) is None
    assert not fence.admit(P1, 4)


def test_a_partition_dropped_while_a_seek_was_in_flight_is_read_again_once_it_settles() -> None:
    # The seek ran in the consumer thread first; the fetch after it moved the partition
    # on from 32, and only then did its records reach the loop and get dropped.
    fence: SeekFence[tuple[str, int]] = SeekFence()
    fence.seek_started()
    fence.fetch_issued()  # even a fetch issued during the seek is not delivered
    assert not fence.admit(P1, 32)
    assert fence.resume_at(P1) is None
    assert fence.settled() == {}  # still in flight
    fence.seek_finished({P1: 32})
    assert fence.settled() == {P1: 32}
    assert fence.settled() == {}  # read again once
