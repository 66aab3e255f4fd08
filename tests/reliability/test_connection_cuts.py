"""Client connections cut mid-frame, both directions, while the workload runs.

Every client reaches the broker through :class:`~tests.reliability.proxy.CuttingProxy` (the
broker advertises the proxy's address, so Metadata sends them back through it). While cutting,
each connection is reset at a random byte position of either direction, so the broker holds
part of a request and the client part of a response. The checker then asks what it always
asks: nothing acknowledged lost, duplicated or reordered. And the broker must keep serving and
hold no state for the dead connections once the clients are gone.

Quick mode in ``make test``; ``make reliability`` sets ``SHOAL_RELIABILITY_CUTS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Final

import pytest

from tests.reliability.checker import check
from tests.reliability.history import Write
from tests.reliability.power_broker import PowerBroker
from tests.reliability.proxy import CuttingProxy
from tests.reliability.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 * 4)]

CUTS: Final = int(os.environ.get("SHOAL_RELIABILITY_CUTS", "40"))
CUTTING_S_MAX: Final = 5.0 + CUTS * 0.5
"""Cutting stops at CUTS cuts or after this long, whichever comes first (clients back off
between reconnects, so cuts come at a rate of several per second)."""
SERVING_AGAIN_S: Final = 3.0
"""After cutting stops, the workload runs this long: writes must be acknowledged again."""
CONNECTIONS_SETTLE_S: Final = 30.0
"""How long the broker may take to notice every closed connection once the clients stop."""


@pytest.fixture
def proxied_broker() -> Iterator[tuple[PowerBroker, CuttingProxy]]:
    proxy = CuttingProxy(seed=31).start()
    broker = PowerBroker(seed=32, advertised_listener=f"127.0.0.1:{proxy.port}").start()
    proxy.upstream_port = broker.port
    yield broker, proxy
    proxy.stop()
    broker.stop()


def test_connections_cut_mid_frame_lose_nothing_and_leak_nothing(
    proxied_broker: tuple[PowerBroker, CuttingProxy],
) -> None:
    broker, proxy = proxied_broker
    baseline = broker.connection_count()
    workload = Workload(f"127.0.0.1:{proxy.port}", WorkloadSettings(topic="cuts"))
    workload.create_topic()
    workload.start()
    try:
        time.sleep(1.0)
        proxy.cutting = True
        workload.history.fault("cutting on")
        deadline = time.monotonic() + CUTTING_S_MAX
        while proxy.cuts < CUTS and time.monotonic() < deadline:
            time.sleep(0.1)
        proxy.cutting = False
        workload.history.fault(f"cutting off after {proxy.cuts} cuts")
        after = len(workload.history.events)
        time.sleep(SERVING_AGAIN_S)
        acked_after = sum(
            1 for e in workload.history.events[after:] if isinstance(e, Write) and e.acked
        )
    finally:
        workload.stop()
    report = check(workload.history, workload.read_back())
    settle = time.monotonic() + CONNECTIONS_SETTLE_S
    while broker.connection_count() > baseline and time.monotonic() < settle:
        time.sleep(0.2)
    print(f"{proxy.cuts} connections cut: {report.summary()}; {acked_after} acked after")
    assert proxy.cuts >= CUTS, f"only {proxy.cuts} cuts: the workload made too few connections"
    assert report.valid, report.anomalies
    assert not workload.fatal_errors, workload.fatal_errors
    assert report.acknowledged > 0 and report.read_by_group > 0
    assert acked_after > 0, "the broker stopped serving after the cuts"
    assert broker.connection_count() == baseline, (
        f"connections of cut clients were kept ({proxy.open_connections} still open "
        "through the proxy)"
    )
    assert broker.unsent_response_bytes() == 0, "responses to cut clients were kept"
