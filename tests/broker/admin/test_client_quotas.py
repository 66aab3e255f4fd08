"""DescribeClientQuotas (48) and AlterClientQuotas (49) over the wire, both versions each:
set, validate_only, remove, the three match types and strict, Kafka's errors for bad input
(nothing changed), and the quotas still there after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

VERSIONS = [0, 1]
EXACT, DEFAULT, SPECIFIED = 0, 1, 2


def entity(*parts: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [{"entity_type": kind, "entity_name": name} for kind, name in parts]


def alter(
    client: WireClient,
    version: int,
    entries: list[tuple[list[dict[str, Any]], list[tuple[str, float | None]]]],
    *,
    validate_only: bool = False,
) -> list[tuple[int, str | None]]:
    values = {
        "entries": [
            {
                "entity": parts,
                "ops": [
                    {"key": key, "value": value or 0.0, "remove": value is None}
                    for key, value in ops
                ],
            }
            for parts, ops in entries
        ],
        "validate_only": validate_only,
    }
    response = client.request(ApiKey.ALTER_CLIENT_QUOTAS, version, values)
    return [(int(e.error_code), e.error_message) for e in response.entries]


def describe(
    client: WireClient,
    version: int,
    components: list[tuple[str, int, str | None]],
    *,
    strict: bool = False,
) -> Any:
    values = {
        "components": [
            {"entity_type": kind, "match_type": match_type, "match": match}
            for kind, match_type, match in components
        ],
        "strict": strict,
    }
    return client.request(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, values)


def described(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == ErrorCode.NONE, response.error_message
    return {
        tuple(sorted((e.entity_type, e.entity_name) for e in entry.entity)): {
            v.key: float(v.value) for v in entry.values
        }
        for entry in response.entries
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_alter_and_describe(shoal_broker: EmbeddedBroker, version: int) -> None:
    with WireClient(shoal_broker.bootstrap_servers) as client:
        alice = entity(("user", "alice"))
        pair = entity(("user", "alice"), ("client-id", "app"))
        default_client = entity(("client-id", None))
        assert (
            alter(
                client,
                version,
                [
                    (alice, [("producer_byte_rate", 1048576.0), ("consumer_byte_rate", 2e6)]),
                    (pair, [("request_percentage", 25.0)]),
                    (default_client, [("controller_mutation_rate", 5.0)]),
                ],
            )
            == [(0, None)] * 3
        )
        # validate_only answers as if applied and applies nothing.
        assert alter(
            client, version, [(alice, [("producer_byte_rate", 1.0)])], validate_only=True
        ) == [(0, None)]
        everything = described(describe(client, version, []))
        assert everything == {
            (("user", "alice"),): {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2e6},
            (("client-id", "app"), ("user", "alice")): {"request_percentage": 25.0},
            (("client-id", None),): {"controller_mutation_rate": 5.0},
        }
        exact = described(describe(client, version, [("user", EXACT, "alice")]))
        assert set(exact) == {(("user", "alice"),), (("client-id", "app"), ("user", "alice"))}
        strict = described(describe(client, version, [("user", EXACT, "alice")], strict=True))
        assert set(strict) == {(("user", "alice"),)}
        defaults = described(describe(client, version, [("client-id", DEFAULT, None)]))
        assert set(defaults) == {(("client-id", None),)}
        specified = described(describe(client, version, [("client-id", SPECIFIED, None)]))
        assert set(specified) == {(("client-id", "app"), ("user", "alice")), (("client-id", None),)}

        # Removal: remove=true drops the key; the last key drops the entity.
        assert alter(client, version, [(pair, [("request_percentage", None)])]) == [(0, None)]
        assert (("client-id", "app"), ("user", "alice")) not in described(
            describe(client, version, [])
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_alterations_get_invalid_request_and_change_nothing(
    shoal_broker: EmbeddedBroker, version: int
) -> None:
    with WireClient(shoal_broker.bootstrap_servers) as client:
        kept = [(entity(("user", "keep")), [("producer_byte_rate", 9.0)])]
        assert alter(client, version, kept) == [(0, None)]
        before = described(describe(client, version, []))
        results = alter(
            client,
            version,
            [
                (entity(("user", "bob")), [("no_such_quota", 1.0)]),
                (entity(("user", "bob"), ("ip", "1.2.3.4")), [("producer_byte_rate", 1.0)]),
                (entity(("topic", "t")), [("producer_byte_rate", 1.0)]),
                (entity(("client-id", "c")), [("consumer_byte_rate", -1.0)]),
                (entity(("ip", None)), [("connection_creation_rate", 2.5)]),
            ],
        )
        assert [code for code, _ in results] == [ErrorCode.INVALID_REQUEST] * 5
        assert [message for _, message in results] == [
            "Invalid configuration key no_such_quota",
            "Invalid quota entity combination, IP entity shouldnot be combined with User or "
            "ClientId",
            "Unhandled client quota entity type: topic",
            "Quota consumer_byte_rate must be greater than 0",
            "connection_creation_rate cannot be a fractional value.",
        ]
        assert described(describe(client, version, [])) == before


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_filters_get_kafkas_request_error(shoal_broker: EmbeddedBroker, version: int) -> None:
    with WireClient(shoal_broker.bootstrap_servers) as client:
        response = describe(client, version, [("user", EXACT, None)])
        assert response.error_code == ErrorCode.INVALID_REQUEST
        assert response.error_message == (
            "Request specified MATCH_TYPE_EXACT, but set match string to null."
        )
        response = describe(client, version, [("group", SPECIFIED, None)])
        assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
        assert response.error_message == "Unsupported entity type group"


def test_quotas_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "kept"
    with (
        EmbeddedBroker(str(data), port=0, http_port=0) as broker,
        WireClient(broker.bootstrap_servers) as client,
    ):
        assert alter(client, 1, [(entity(("user", None)), [("producer_byte_rate", 1024.0)])]) == [
            (0, None)
        ]
    with (
        EmbeddedBroker(str(data), port=0, http_port=0) as broker,
        WireClient(broker.bootstrap_servers) as client,
    ):
        assert described(describe(client, 1, [])) == {
            (("user", None),): {"producer_byte_rate": 1024.0}
        }
