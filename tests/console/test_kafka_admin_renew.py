"""KafkaAdmin.renew: requests timing out together (worker threads and the event loop) make one
fresh Admin client, not one each, and never race on the swap."""

from __future__ import annotations

import threading

from shoal.console.kafka_admin import RENEW_INTERVAL_S, KafkaAdmin

THREADS = 8


def test_renew_happens_once_per_interval_whatever_the_callers() -> None:
    now = [100.0]
    # Port 1 refuses at once: the client never reaches a broker, it only has to exist.
    admin = KafkaAdmin({"bootstrap.servers": "127.0.0.1:1"}, clock=lambda: now[0])
    first = admin.admin
    start = threading.Barrier(THREADS)
    outcomes: list[bool] = []

    def renew() -> None:
        start.wait()
        outcomes.append(admin.renew())

    threads = [threading.Thread(target=renew) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * (THREADS - 1) + [True]
    second = admin.admin
    assert second is not first

    now[0] += RENEW_INTERVAL_S / 2
    assert admin.renew() is False
    assert admin.admin is second
    now[0] += RENEW_INTERVAL_S
    assert admin.renew() is True
    assert admin.admin is not second
    admin.close()


def test_a_forced_renew_does_not_wait_for_the_interval() -> None:
    admin = KafkaAdmin({"bootstrap.servers": "127.0.0.1:1"}, clock=lambda: 100.0)
    assert admin.renew() is True
    before = admin.admin
    assert admin.renew() is False
    assert admin.renew(force=True) is True
    assert admin.admin is not before
    admin.close()
