"""The App's Prometheus instruments, read back through the text exposition a scraper sees."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from shoal.app.observability.metrics import EXCEPTION_TYPES_MAX, OTHER_EXCEPTION, Instruments


class PaymentDeclined(Exception):
    pass


def scrape(instruments: Instruments) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by (sample name, labels)."""
    body, content_type = instruments.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def test_processed_counts_and_durations_per_subscriber_and_topic() -> None:
    m = Instruments()
    m.processed("bill", "orders", 0.0004)
    m.processed("bill", "orders", 0.003)
    m.processed("bill", "refunds", 2.0)
    m.processed("bill", "refunds", 0.001)  # on a bound: counted in that bucket ("le")
    got = scrape(m)
    orders = labels(subscriber="bill", topic="orders")
    assert got[("shoal_messages_processed_total", orders)] == 2
    refunds = labels(subscriber="bill", topic="refunds")
    assert got[("shoal_messages_processed_total", refunds)] == 2
    assert got[("shoal_handler_duration_seconds_bucket", refunds | labels(le="0.001"))] == 1
    assert got[("shoal_handler_duration_seconds_bucket", refunds | labels(le="1.0"))] == 1
    assert got[("shoal_handler_duration_seconds_bucket", refunds | labels(le="+Inf"))] == 2
    assert got[("shoal_handler_duration_seconds_count", orders)] == 2
    assert abs(got[("shoal_handler_duration_seconds_sum", orders)] - 0.0034) < 1e-9
    # Sub-millisecond handlers are told apart from millisecond ones.
    assert got[("shoal_handler_duration_seconds_bucket", orders | labels(le="0.0005"))] == 1
    assert got[("shoal_handler_duration_seconds_bucket", orders | labels(le="0.005"))] == 2


def test_failures_retries_and_dead_letters() -> None:
    m = Instruments()
    m.failed("bill", "orders", PaymentDeclined("no"))
    m.failed("bill", "orders", ValueError("bad"))
    m.failed("bill", "orders", ValueError("worse"))
    m.retried("bill", "orders")
    m.dead_lettered("bill", "orders")
    got = scrape(m)
    sub = labels(subscriber="bill", topic="orders")
    declined = f"{__name__}.PaymentDeclined"
    assert got[("shoal_messages_failed_total", sub | labels(exception=declined))] == 1
    assert got[("shoal_messages_failed_total", sub | labels(exception="ValueError"))] == 2
    assert got[("shoal_messages_retried_total", sub)] == 1
    assert got[("shoal_messages_dead_lettered_total", sub)] == 1


def test_exception_label_cardinality_is_capped_per_subscriber() -> None:
    m = Instruments()
    kinds = [type(f"Error{i}", (Exception,), {}) for i in range(EXCEPTION_TYPES_MAX + 5)]
    for kind in kinds:
        m.failed("bill", "orders", kind())
    m.failed("bill", "orders", kinds[0]())  # an early type keeps its own series
    got = scrape(m)
    failed = {k: v for k, v in got.items() if k[0] == "shoal_messages_failed_total"}
    assert len(failed) == EXCEPTION_TYPES_MAX + 1
    sub = labels(subscriber="bill", topic="orders")
    assert failed[("shoal_messages_failed_total", sub | labels(exception=OTHER_EXCEPTION))] == 5
    first = f"{__name__}.Error0"
    assert failed[("shoal_messages_failed_total", sub | labels(exception=first))] == 2


def test_lag_breaker_and_published() -> None:
    m = Instruments()
    m.lag("billing", "orders", 0, 42)
    m.lag("billing", "orders", 1, 0)
    m.lag("billing", "orders", 0, 7)
    m.breaker_state("payments", "open")
    m.breaker_state("ledger", "half_open")
    m.published("invoices")
    m.published("invoices")
    got = scrape(m)
    assert got[("shoal_consumer_lag", labels(group="billing", topic="orders", partition="0"))] == 7
    assert got[("shoal_consumer_lag", labels(group="billing", topic="orders", partition="1"))] == 0
    assert got[("shoal_breaker_state", labels(breaker="payments"))] == 1
    assert got[("shoal_breaker_state", labels(breaker="ledger"))] == 2
    assert got[("shoal_messages_published_total", labels(topic="invoices"))] == 2

    m.forget_lag("billing", "orders", 1)
    m.forget_lag("billing", "orders", 9)  # never reported: nothing to forget, no error
    m.breaker_state("payments", "closed")
    got = scrape(m)
    assert ("shoal_consumer_lag", labels(group="billing", topic="orders", partition="1")) not in got
    assert got[("shoal_breaker_state", labels(breaker="payments"))] == 0


def test_two_instances_do_not_share_a_registry() -> None:
    # Two Apps in one process (or one per test) each construct Instruments(); with the global
    # registry the second would fail with "Duplicated timeseries".
    a, b = Instruments(), Instruments()
    a.processed("h", "t", 0.01)
    assert scrape(a)[("shoal_messages_processed_total", labels(subscriber="h", topic="t"))] == 1
    assert ("shoal_messages_processed_total", labels(subscriber="h", topic="t")) not in scrape(b)
