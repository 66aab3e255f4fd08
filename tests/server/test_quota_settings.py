"""The quota settings (Kafka's quota.window.num, quota.window.size.seconds and
max.connection.creation.rate): reach the broker, and bad values are refused by name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shoal.server.settings import Settings, SettingsError, load_settings


def test_quota_settings_reach_the_broker_config() -> None:
    settings = load_settings(
        environ={"SHOAL_QUOTA_WINDOW_NUM": "5"},
        overrides={"quota_window_size_seconds": 2, "max_connection_creation_rate": 50},
    )
    quota = settings.broker_config().quota
    assert (quota.quota_window_num, quota.quota_window_size_seconds) == (5, 2)
    assert quota.max_connection_creation_rate == 50
    assert quota.rate.window_ms == 2000


@pytest.mark.parametrize(
    "field", ["quota_window_num", "quota_window_size_seconds", "max_connection_creation_rate"]
)
def test_a_quota_setting_below_one_is_refused(field: str) -> None:
    with pytest.raises(SettingsError, match=field):
        replace(Settings(), **{field: 0}).broker_config()
