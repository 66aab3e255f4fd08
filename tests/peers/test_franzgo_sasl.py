"""franz-go's SCRAM and OAUTHBEARER integration tests (pkg/kgo's TestSCRAMAuth,
TestSCRAMAuthBadCredentials, TestOAuthAuth) against a SASL_PLAINTEXT shoal broker, configured
as franz-go's CI configures Kafka: KGO_TEST_SCRAM, KGO_TEST_SCRAM_SEEDS, KGO_TEST_OAUTH_SEEDS
(OAUTHBEARER with unsecured tokens allowed, as Kafka's default validator accepts them)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.embedded import EmbeddedBroker
from tests.peers.franzgo import FranzGoTests, install, name_pattern
from tests.support.sasl import add_user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

SASL_TESTS = ("TestSCRAMAuth", "TestSCRAMAuthBadCredentials", "TestOAuthAuth")


@pytest.fixture(scope="module")
def franzgo() -> FranzGoTests:
    return install()


@pytest.mark.parametrize("bits", ["256", "512"])
def test_franzgo_scram_and_oauth(
    franzgo: FranzGoTests,
    sasl_broker_factory: Callable[..., EmbeddedBroker],
    tmp_path: Path,
    bits: str,
) -> None:
    broker = sasl_broker_factory(
        mechanisms=["SCRAM-SHA-512", "SCRAM-SHA-256", "OAUTHBEARER"],
        sasl_oauthbearer_allow_unsecured=True,
    )
    add_user(broker, "franz", "franz-secret")
    env = {
        **os.environ,
        "KGO_SEEDS": broker.bootstrap_servers,
        "KGO_TEST_SCRAM": f"franz:franz-secret:{bits}",
        "KGO_TEST_SCRAM_SEEDS": broker.bootstrap_servers,
        "KGO_TEST_OAUTH_SEEDS": broker.bootstrap_servers,
        "KGO_LOG_LEVEL": "none",
    }
    log = tmp_path / "franzgo-sasl.log"
    with log.open("wb") as out:
        proc = subprocess.run(
            [
                str(franzgo.binary),
                "-test.v",
                "-test.timeout",
                "5m",
                "-test.run",
                name_pattern(SASL_TESTS),
            ],
            cwd=franzgo.package_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    for name in SASL_TESTS:
        assert f"--- PASS: {name} " in text, f"{name} did not pass:\n{text[-6000:]}"
