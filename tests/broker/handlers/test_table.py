"""The handler table and the supported-versions table agree, and each key has its own module."""

from __future__ import annotations

import inspect
from pathlib import Path

from shoal.broker.broker import Broker
from shoal.broker.broker_settings import BrokerSettings
from shoal.broker.handlers import HANDLERS
from shoal.broker.handlers.table import UNHANDLED
from shoal.broker.share_groups import SHARE_GROUP_APIS
from shoal.coordinator.group_config import GroupConfig
from shoal.protocol import SUPPORTED_APIS, ApiKey
from shoal.storage import LogManager


def test_every_handled_key_is_a_supported_api() -> None:
    assert set(HANDLERS) <= set(SUPPORTED_APIS)


def test_every_supported_api_is_handled_or_listed_as_unhandled() -> None:
    assert set(HANDLERS).isdisjoint(UNHANDLED)
    assert set(HANDLERS) | UNHANDLED == set(SUPPORTED_APIS)


def test_keys_are_api_keys_and_each_is_answered_by_the_module_of_its_name() -> None:
    # A handler wired to the wrong key (say Heartbeat's under LeaveGroup) fails here.
    for key, handler in HANDLERS.items():
        assert isinstance(key, ApiKey)
        module = handler.__module__.rsplit(".", 1)[-1]
        assert (module, handler.__name__) == (key.name.lower(), f"handle_{key.name.lower()}")
        assert inspect.iscoroutinefunction(handler)


def test_the_broker_serves_and_advertises_exactly_the_handled_keys(tmp_path: Path) -> None:
    logs = LogManager.open(str(tmp_path))
    try:
        broker = Broker(BrokerSettings(), logs, handlers=HANDLERS)
        assert set(broker.apis) == set(HANDLERS)
        # share.version 0 serves no share-group API (issue 16).
        unshared = Broker(
            BrokerSettings(group=GroupConfig(share_version=0)), logs, handlers=HANDLERS
        )
        assert set(unshared.apis) == set(HANDLERS) - SHARE_GROUP_APIS
    finally:
        logs.close()
