from __future__ import annotations

import random

import pytest

from harness.measure import hist


def test_merge_of_encoded_histograms_equals_the_union_of_samples() -> None:
    rng = random.Random(7)
    parts = [[rng.randint(1, 5_000_000) for _ in range(3000)] for _ in range(3)]
    union = hist.new()
    encoded = []
    for samples in parts:
        h = hist.new()
        for v in samples:
            assert h.record_value(v)
            union.record_value(v)
        encoded.append(hist.encode(h))
    merged = hist.merge(encoded)
    assert merged.get_total_count() == union.get_total_count() == 9000
    assert hist.latency_summary(merged) == hist.latency_summary(union)


@pytest.mark.parametrize("point", [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0])
def test_fast_percentiles_match_hdrhistogram(point: float) -> None:
    rng = random.Random(point)
    h = hist.new()
    for _ in range(5000):
        h.record_value(int(rng.lognormvariate(8, 2)) + 1)
    if point == 0.0:
        assert hist.percentiles(h, [point])[0] >= h.get_min_value()
    else:
        assert hist.percentiles(h, [point])[0] == h.get_value_at_percentile(point)
    assert hist.mean(h) == pytest.approx(h.get_mean_value())


def test_out_of_range_values_are_refused_not_clamped() -> None:
    h = hist.new()
    assert h.record_value(hist.HIGHEST_US * 2) is False
    assert h.get_total_count() == 0


def test_empty_summary_is_all_zero() -> None:
    assert hist.latency_summary(hist.new())["count"] == 0
    assert hist.connect_summary(hist.new()) == {"count": 0, "p50": 0, "p95": 0, "p99": 0, "max": 0}


def test_an_empty_part_leaves_the_minimum_alone() -> None:
    """hdrh's own ``add`` of an empty histogram sets the minimum to 0 for good."""
    empty, part = hist.new(), hist.new()
    part.record_value(1500)
    for payloads in ([hist.encode(empty), hist.encode(part)], [hist.encode(part), hist.encode(empty)]):
        assert hist.latency_summary(hist.merge(payloads))["min"] == 1.5
    assert hist.decode(hist.encode(empty)).get_total_count() == 0
    cumulative = hist.new()
    hist.add(cumulative, empty)
    hist.add(cumulative, part)
    assert hist.latency_summary(cumulative)["min"] == 1.5
