"""Kafka's sampled rate and throttle time, on an injected clock (milliseconds given by hand)."""

from __future__ import annotations

import pytest

from shoal.security.quota_rate import RateConfig, SampledRate, throttle_time_ms

KAFKA = RateConfig(samples=11, window_ms=1000)


def test_a_young_rate_counts_as_if_it_had_run_for_all_but_one_window() -> None:
    rate = SampledRate(KAFKA)
    rate.record(1_000_000, now_ms=0)
    # 0 ms elapsed, 0 full windows < 10: the span is taken as 10 windows.
    assert rate.window_ms(0) == 10_000
    assert rate.measure(0) == pytest.approx(100_000)


def test_throttle_time_brings_the_rate_back_to_the_quota() -> None:
    rate = SampledRate(KAFKA)
    rate.record(2_000_000, now_ms=0)
    # Observed 200 kB/s over 10 s against 100 kB/s: X = (O - T) / T * W = 10 s.
    assert throttle_time_ms(rate, 100_000, 0) == 10_000
    # Once the burst's sample is older than all eleven windows, nothing is left of it.
    assert throttle_time_ms(rate, 100_000, 11_000) == 0


def test_within_the_quota_there_is_no_throttle() -> None:
    rate = SampledRate(KAFKA)
    for second in range(30):
        rate.record(90_000, now_ms=second * 1000)
    assert throttle_time_ms(rate, 100_000, 29_000) == 0


def test_a_steady_rate_above_the_quota_is_measured_over_the_full_span() -> None:
    rate = SampledRate(KAFKA)
    for second in range(30):
        rate.record(200_000, now_ms=second * 1000)
    # Twelve samples are kept (the eleven windows and the one overlapping their start); at
    # 29 s the one of 18 s is eleven windows old and purged: 19 s..29 s remain, 11 samples
    # of 200 kB over 29_000 - 19_000 = 10 s.
    assert rate.window_ms(29_000) == 10_000
    assert rate.measure(29_000) == pytest.approx(11 * 200_000 / 10)
    # (O - T) / T * W = (220k - 100k) / 100k * 10 s.
    assert throttle_time_ms(rate, 100_000, 29_000) == 12_000


def test_samples_older_than_the_whole_span_are_forgotten() -> None:
    rate = SampledRate(KAFKA)
    rate.record(5_000_000, now_ms=0)
    assert rate.measure(11_000) == 0.0
    assert throttle_time_ms(rate, 1.0, 11_000) == 0


def test_negative_values_take_back_what_was_recorded() -> None:
    rate = SampledRate(KAFKA)
    rate.record(3_000_000, now_ms=0)
    rate.record(-3_000_000, now_ms=0)
    assert rate.measure(0) == 0.0


def test_throttle_time_rounds_halves_up_as_java_does() -> None:
    rate = SampledRate(RateConfig(samples=1, window_ms=1000))
    rate.record(3, now_ms=0)
    # Span: max(0, 1) ms; rate 3000/s against 2000/s: X = 0.5 * 1 ms, rounded up to 1.
    assert throttle_time_ms(rate, 2000, 0) == 1


def test_a_rate_needs_a_window() -> None:
    with pytest.raises(ValueError, match="window"):
        RateConfig(samples=0)
