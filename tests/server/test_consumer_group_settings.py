"""The KIP-848 group settings (Kafka's group.consumer.*): reach the group coordinator's config,
and bad values are refused by name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shoal.server.settings import Settings, SettingsError, load_settings


def test_consumer_group_settings_reach_the_broker_config() -> None:
    settings = load_settings(
        environ={"SHOAL_GROUP_CONSUMER_ASSIGNORS": "range,uniform"},
        overrides={
            "group_consumer_session_timeout_ms": 50_000,
            "group_consumer_heartbeat_interval_ms": 6_000,
            "group_consumer_migration_policy": "Upgrade",
        },
    )
    group = settings.broker_config().group
    assert group.consumer_assignors == ("range", "uniform")
    assert (group.consumer_session_timeout_ms, group.consumer_heartbeat_interval_ms) == (
        50_000,
        6_000,
    )
    assert group.consumer_migration_policy == "upgrade"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"group_consumer_assignors": "uniform,sticky"}, "group_consumer_assignors"),
        ({"group_consumer_assignors": ""}, "group_consumer_assignors"),
        ({"group_consumer_migration_policy": "sideways"}, "group_consumer_migration_policy"),
        ({"group_consumer_heartbeat_interval_ms": 0}, "group_consumer_heartbeat_interval_ms"),
        (
            {"group_consumer_heartbeat_interval_ms": 50_000},
            "group_consumer_heartbeat_interval_ms",
        ),
    ],
)
def test_bad_consumer_group_settings_are_refused_by_name(
    changes: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        replace(Settings(), **changes).broker_config()
