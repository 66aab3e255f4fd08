"""The ACL matrix: every (API, resource, operation) of Kafka's authorization table, with ALLOW,
DENY, PREFIXED, wildcard, host, principal and no-ACL variants (tests/broker/acl/matrix.py),
answered by the broker's handlers in-process for the principal ``User:alice``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.broker.topics import TopicStore
from shoal.records import SimpleRecord, build_batch
from shoal.security.acl_authorizer import AuthorizerConfig
from tests.broker.acl.harness import AclHarness
from tests.broker.acl.matrix import (
    AUTHORIZATION_ERRORS,
    PRINCIPAL,
    SUPER_USER,
    TOPIC,
    VARIANTS,
    Case,
    Variant,
    find_code,
    read_code,
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[AclHarness]:
    h = AclHarness(tmp_path / "data", AuthorizerConfig(super_users=frozenset({SUPER_USER})))
    broker = h.start()
    broker.create_topic(TOPIC, 1)
    assert isinstance(broker.topics, TopicStore)
    yield h
    h.stop()


def _with_batch(values: Any) -> Any:
    """The matrix's placeholder "BATCH" replaced by a real record batch."""
    if values == "BATCH":
        return build_batch([SimpleRecord(value=b"v")], base_timestamp=1_700_000_000_000)
    if isinstance(values, dict):
        return {k: _with_batch(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_with_batch(v) for v in values]
    return values


def run_setup(harness: AclHarness, case: Case) -> None:
    for api_key, version, values in case.setup:
        harness.call(api_key, version, values, principal=SUPER_USER)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_the_answer_is_the_documented_one(harness: AclHarness, variant: Variant) -> None:
    case = variant.case
    run_setup(harness, case)
    harness.add(*variant.acls)
    response = harness.call(
        case.api_key, case.version, _with_batch(case.request), principal=PRINCIPAL
    )
    if variant.denied is not None:
        assert read_code(response, variant.denied.at) == variant.denied.error, response
    else:
        codes = {find_code(response, need.at) for need in case.needs}
        assert not codes & AUTHORIZATION_ERRORS, response


def test_the_matrix_covers_every_case_with_every_kind_of_variant() -> None:
    labels = {v.label.rstrip("-0123456789") for v in VARIANTS}
    assert {"allow", "no-acl", "deny", "prefixed", "wildcard-resource", "wildcard-principal",
            "other-host", "other-principal", "implied", "instead"} <= labels  # fmt: skip
