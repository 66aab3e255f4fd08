"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51) against Apache Kafka
4.4 and shoal: the same per-user error codes and messages, and the same advertised versions
of the SASL APIs. Raw requests (the test wire client), so that every field is compared; user
names are unique per run and compared by their role in the scenario."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from tests.peers.kafka_peer import KafkaPeer
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

SHA256, SHA512 = 1, 2


def _upsertion(name: str, mechanism: int = SHA512, iterations: int = 8192) -> dict[str, Any]:
    salt = os.urandom(16)
    hash_name = "sha512" if mechanism == SHA512 else "sha256"
    salted = hashlib.pbkdf2_hmac(hash_name, b"secret", salt, max(iterations, 1))
    return {
        "name": name,
        "mechanism": mechanism,
        "iterations": iterations,
        "salt": salt,
        "salted_password": salted,
    }


def _scenario(bootstrap: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    roles = {
        "ok": f"ok-{run}",
        "ok256": f"ok256-{run}",
        "few": f"few-{run}",
        "many": f"many-{run}",
        "mech": f"mech-{run}",
        "twice": f"twice-{run}",
        "ghost": f"ghost-{run}",
    }
    by_name = {name: role for role, name in roles.items()}
    by_name[""] = "empty"
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        versions = client.api_versions()
        ranges = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        out["versions"] = {key: ranges.get(key) for key in (17, 36, 50, 51)}
        altered = client.request(
            51,
            0,
            {
                "deletions": [{"name": roles["ghost"], "mechanism": SHA512}],
                "upsertions": [
                    _upsertion(roles["ok"]),
                    _upsertion(roles["ok256"], SHA256, 4096),
                    _upsertion(roles["few"], iterations=4095),
                    _upsertion(roles["many"], iterations=16385),
                    _upsertion(roles["mech"], mechanism=3),
                    _upsertion(""),
                    _upsertion(roles["twice"]),
                    _upsertion(roles["twice"], SHA256, 4096),
                ],
            },
        )
        out["alter"] = sorted(
            (by_name[r.user], int(r.error_code), r.error_message) for r in altered.results
        )
        # Kafka applies the change through its metadata log: wait until it describes it.
        deadline = time.monotonic() + 30
        while True:
            described = client.request(
                50,
                0,
                {
                    "users": [
                        {"name": roles["ok"]},
                        {"name": roles["ok256"]},
                        {"name": roles["ghost"]},
                        {"name": roles["few"]},
                        {"name": roles["few"]},
                    ]
                },
            )
            found = {r.user: int(r.error_code) for r in described.results}
            if found.get(roles["ok"]) == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        out["describe_error"] = int(described.error_code)
        out["describe"] = sorted(
            (
                by_name[r.user],
                int(r.error_code),
                r.error_message if not r.error_message else r.error_message.replace(r.user, "<u>"),
                sorted((int(i.mechanism), int(i.iterations)) for i in r.credential_infos),
            )
            for r in described.results
        )
        deleted = client.request(
            51,
            0,
            {
                "deletions": [
                    {"name": roles["ok"], "mechanism": SHA512},
                    {"name": roles["ok256"], "mechanism": SHA512},  # it has SHA-256 only
                ],
                "upsertions": [],
            },
        )
        out["delete"] = sorted(
            (by_name[r.user], int(r.error_code), r.error_message) for r in deleted.results
        )
    return out


def test_scram_admin_apis_same_as_kafka(
    kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker
) -> None:
    kafka = _scenario(kafka_peer.bootstrap_servers)
    shoal = _scenario(shoal_target.bootstrap_servers)
    assert shoal == kafka
