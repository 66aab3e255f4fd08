"""The ``transaction_version`` setting: the level of the ``transaction.version`` feature
ApiVersions reports, which Kafka 4.x clients read to choose transactions V2 (2, the default)
or the classic protocol (1 or 0). tests/differential/test_java_txn_v2.py runs the Java
producer at level 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.broker.features import TRANSACTION_VERSION
from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from shoal.server.settings import Settings, SettingsError
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration


def _feature(broker: EmbeddedBroker) -> tuple[tuple[int, int] | None, int | None]:
    """(supported range, finalized level) of transaction.version; None when not listed.
    As Kafka's: the supported range is the broker's (0-2) whatever the finalized level, and
    a level of 0 is not finalized."""
    with WireClient(broker.bootstrap_servers) as client:
        answer = client.request(ApiKey.API_VERSIONS, 4, {})
    supported = {
        str(f.name): (int(f.min_version), int(f.max_version)) for f in answer.supported_features
    }
    finalized = {str(f.name): int(f.max_version_level) for f in answer.finalized_features}
    return supported.get(TRANSACTION_VERSION), finalized.get(TRANSACTION_VERSION)


@pytest.mark.parametrize(
    ("level", "reported"), [(2, ((0, 2), 2)), (1, ((0, 2), 1)), (0, ((0, 2), None))]
)
def test_the_setting_is_the_finalized_level(
    tmp_path: Path, level: int, reported: tuple[tuple[int, int] | None, int | None]
) -> None:
    with EmbeddedBroker(str(tmp_path), transaction_version=level) as broker:
        assert _feature(broker) == reported


def test_a_level_shoal_does_not_have_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="transaction_version must be 0, 1 or 2, not 3"):
        Settings(data_dir=str(tmp_path), transaction_version=3).broker_config()
