"""The per-message state a soak run keeps (fan-out slots, ledger, error reasons): compact and still exact.

Fast unit tests (not marked ``soak``): each compares the packed form with the plain one it replaced.
"""

from __future__ import annotations

import random

from harness.measure.accounting import Ledger
from harness.measure.recorder import MAX_ERROR_REASONS, OTHER_REASONS, SLOWEST_CAP_US, Recorder, Slowest


def _dict_slowest(notes: list[tuple[int, int]]) -> list[list[int]]:
    """The map the packed slots replaced: seq -> slowest latency, kept only above -1."""
    slowest: dict[int, int] = {}
    for seq, latency in notes:
        if latency > slowest.get(seq, -1):
            slowest[seq] = latency
    ordered = sorted(slowest.items())
    return [[seq for seq, _ in ordered], [v for _, v in ordered]]


def test_the_packed_fanout_slots_give_what_the_map_gave_in_any_arrival_order() -> None:
    rng = random.Random(11)
    for _ in range(200):
        notes = [(rng.randrange(40, 80), rng.randrange(-3, 50_000)) for _ in range(rng.randrange(1, 60))]
        slots = Slowest(notes[0][0])
        for seq, latency in notes:
            slots.note(seq, latency)
        assert slots.to_wire() == _dict_slowest(notes)


def test_a_latency_past_the_slot_range_is_capped_beyond_the_histograms_range() -> None:
    slots = Slowest(0)
    slots.note(0, 2**40)
    slots.note(1, SLOWEST_CAP_US - 1)
    assert slots.to_wire() == [[0, 1], [SLOWEST_CAP_US, SLOWEST_CAP_US - 1]]
    assert slots.values.itemsize == 4


def test_the_ledger_packs_its_send_times_and_its_wire_form_is_unchanged() -> None:
    ledger = Ledger("p", "c", [5, 7, 9], {1})
    ledger.sent_ns.append(2**62)
    assert ledger.sent_ns.itemsize == 8
    wire = ledger.to_wire()
    assert wire == {"stream_id": "p", "channel": "c", "sent_ns": [5, 7, 9, 2**62], "failed": [1]}
    assert Ledger.from_wire(wire).to_wire() == wire


def test_error_reasons_stay_bounded_and_every_error_is_counted() -> None:
    rec = Recorder()
    for i in range(MAX_ERROR_REASONS + 50):
        rec.error(f"bad frame {i}")
    rec.error("bad frame 3")  # a reason already known keeps its own count
    assert len(rec.error_reasons) == MAX_ERROR_REASONS + 1
    assert rec.error_reasons[OTHER_REASONS] == 50
    assert rec.error_reasons["bad frame 3"] == 2
    assert rec.counts["errors"] == sum(rec.error_reasons.values()) == MAX_ERROR_REASONS + 51
