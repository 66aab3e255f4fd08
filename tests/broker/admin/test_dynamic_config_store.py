"""broker-configs.json on its own, on the fault-injecting filesystem: a crash at any point leaves
the old or the new configs, a failed save changes nothing, a damaged file is refused."""

from __future__ import annotations

import errno
from collections.abc import Mapping

import pytest

from shoal.broker.broker_configs import CLUSTER_SEED, validate_dynamic
from shoal.broker.dynamic_config_store import (
    BROKER_CONFIGS_FILE,
    DynamicConfigsDamaged,
    DynamicConfigStore,
)
from shoal.testing.faultfs import FaultyFileSystem

DATA_DIR = "/data"
PATH = f"{DATA_DIR}/{BROKER_CONFIGS_FILE}"


def validate(configs: Mapping[str, str], cluster: bool) -> Mapping[str, str]:
    return validate_dynamic(configs, cluster=cluster)


def store(fs: FaultyFileSystem) -> DynamicConfigStore:
    return DynamicConfigStore(fs, DATA_DIR, CLUSTER_SEED, validate)


@pytest.fixture
def fs() -> FaultyFileSystem:
    fs = FaultyFileSystem()
    fs.makedirs(DATA_DIR)
    fs.fsync_dir("/")
    return fs


def test_a_new_cluster_starts_from_the_seed(fs: FaultyFileSystem) -> None:
    configs = store(fs)
    assert configs.cluster == {"min.insync.replicas": "1"}
    assert configs.broker(1) == {}
    assert not fs.exists(PATH)  # nothing written until something changes


def test_changes_are_durable_once_replace_returns(fs: FaultyFileSystem) -> None:
    configs = store(fs)
    configs.replace(None, {"min.insync.replicas": "1", "log.retention.ms": "60000"})
    configs.replace(1, {"log.segment.bytes": "2097152"})
    fs.crash()
    reopened = store(fs)
    assert reopened.cluster == {"min.insync.replicas": "1", "log.retention.ms": "60000"}
    assert reopened.broker(1) == {"log.segment.bytes": "2097152"}
    assert reopened.broker(2) == {}
    configs.replace(1, {})  # an emptied level goes
    assert store(fs).broker(1) == {}


@pytest.mark.parametrize("keep_unsynced", [False, True])
def test_a_crash_mid_save_leaves_the_old_or_the_new_configs(
    fs: FaultyFileSystem, keep_unsynced: bool
) -> None:
    old = {"min.insync.replicas": "1", "log.retention.ms": "60000"}
    new = {"min.insync.replicas": "1", "log.retention.ms": "120000"}
    configs = store(fs)
    configs.replace(None, old)
    # The temporary file's fsync fails, so it never replaces the file; then power is lost.
    fs.fail_next_fsync()
    with pytest.raises(OSError):
        configs.replace(None, new)
    assert configs.cluster == old  # memory put back
    fs.crash(keep_unsynced=keep_unsynced)
    assert store(fs).cluster == old


def test_a_failed_write_changes_nothing(fs: FaultyFileSystem) -> None:
    configs = store(fs)
    fs.fail_next_write(errno.ENOSPC, after_bytes=5)
    with pytest.raises(OSError):
        configs.replace(1, {"log.retention.ms": "1"})
    assert configs.broker(1) == {}
    assert not fs.exists(PATH)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"version": 2, "cluster": {}, "brokers": {}}',
        b'{"version": 1, "cluster": {"min.insync.replicas": "1"}}',
        b'{"version": 1, "cluster": {"min.insync.replicas": 1}, "brokers": {}}',
        # A value no change could have stored: refused rather than half applied.
        b'{"version": 1, "cluster": {"min.insync.replicas": "1", "log.dirs": "/x"}, "brokers": {}}',
        b'{"version": 1, "cluster": {}, "brokers": {}}',
    ],
)
def test_a_damaged_file_is_refused_with_a_message(fs: FaultyFileSystem, content: bytes) -> None:
    fs.write_bytes(PATH, content)
    with pytest.raises(DynamicConfigsDamaged, match="remove it to go back"):
        store(fs)
