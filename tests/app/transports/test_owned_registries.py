"""The framework's process-wide registries have owners with a stated lifetime: the named memory
brokers (``memory://NAME``) and the embedded brokers (``embedded://PATH``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.app.transports.embedded import EmbeddedBrokers
from shoal.app.transports.memory import NAMED_BROKERS, MemoryBrokers, MemoryTransport


def test_transports_naming_one_memory_broker_share_it_until_the_owner_resets() -> None:
    brokers = MemoryBrokers()
    first = MemoryTransport("shared", brokers=brokers)
    asyncio.run(first.send("t", b"v", None, []))
    second = MemoryTransport("shared", brokers=brokers)
    assert second.broker is first.broker
    assert [m.value for m in asyncio.run(second.read_topic("t"))] == [b"v"]
    assert MemoryTransport("", brokers=brokers).broker is not first.broker  # unnamed: private
    assert "shared" not in NAMED_BROKERS.names()  # another owner's brokers are not the process's

    brokers.reset()
    assert brokers.names() == []
    assert asyncio.run(MemoryTransport("shared", brokers=brokers).read_topic("t")) == []


def test_an_embedded_broker_is_shared_per_directory_and_stopped_with_its_last_user(
    tmp_path: Path,
) -> None:
    brokers = EmbeddedBrokers()
    data_dir = tmp_path / "data"
    first = brokers.acquire(str(data_dir))
    try:
        # The same directory, however it is spelled, is the same broker.
        assert brokers.acquire(str(tmp_path / "." / "data")) is first
        brokers.release(first)
        assert brokers.data_dirs() == [str(data_dir.resolve())]  # one user left: still running
    finally:
        brokers.release(first)
    assert brokers.data_dirs() == []

    # A new user after the last one left gets a broker of its own (the first released the
    # directory lock, or this start would fail), which stop_all stops.
    again = brokers.acquire(str(data_dir))
    assert again is not first
    brokers.stop_all()
    assert brokers.data_dirs() == []
