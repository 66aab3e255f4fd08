"""The ACL matrix: every (API, resource, operation) of Kafka's authorization table, with ALLOW,
DENY, PREFIXED, wildcard, host, principal and no-ACL variants (tests/broker/acl/matrix.py),
answered by the broker's handlers in-process for the principal ``User:alice``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.broker.topics import TopicStore
from shoal.security.acl_authorizer import AuthorizerConfig
from tests.broker.acl.harness import AclHarness, run_setup, with_batch
from tests.broker.acl.matrix import (
    AUTHORIZATION_ERRORS,
    PRINCIPAL,
    SUPER_USER,
    TOPIC,
    VARIANTS,
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


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_the_answer_is_the_documented_one(harness: AclHarness, variant: Variant) -> None:
    case = variant.case
    run_setup(harness, case)
    harness.add(*variant.acls)
    response = harness.call(
        case.api_key, case.version, with_batch(case.request), principal=PRINCIPAL
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
