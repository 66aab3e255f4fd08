"""build() and response_for(): keys of other versions are ignored, keys of no version refused.

A misspelled key used to be dropped silently, which put the field's zero on the wire. Now it
raises UnknownFieldError (a programmer error, not a Kafka error), at any nesting level.
"""

from __future__ import annotations

import dataclasses

import pytest

from shoal.invariant import InvariantError
from shoal.protocol import ApiKey
from shoal.protocol._kio import request_class, response_class
from shoal.protocol.build import UnknownFieldError, build, response_for
from tests.protocol.kio_values import all_served_versions, case_id

TYPO = "eror_code"


@pytest.mark.parametrize(
    ("key", "version"),
    all_served_versions(),
    ids=[case_id(k, v) for k, v in all_served_versions()],
)
def test_a_misspelled_top_level_key_raises_for_every_served_response(
    key: int, version: int
) -> None:
    with pytest.raises(UnknownFieldError, match=TYPO) as caught:
        response_for(key, version, {TYPO: 0})
    assert isinstance(caught.value, InvariantError)  # a bug in shoal, never answered to a client
    message = str(caught.value)
    assert response_class(key, version).__name__ in message
    assert f"v{version}" in message


@pytest.mark.parametrize(
    ("key", "version"),
    all_served_versions(),
    ids=[case_id(k, v) for k, v in all_served_versions()],
)
def test_a_misspelled_top_level_key_raises_for_every_served_request(key: int, version: int) -> None:
    with pytest.raises(UnknownFieldError, match=TYPO):
        build(request_class(key, version), {TYPO: 0})


def test_a_misspelled_nested_key_raises_and_names_its_place() -> None:
    values = {"responses": [{"name": "t", "partition_responses": [{"indx": 0}]}]}
    with pytest.raises(UnknownFieldError) as caught:
        response_for(ApiKey.PRODUCE, 9, values)
    message = str(caught.value)
    assert "'indx'" in message
    assert "ProduceResponse.responses[].partition_responses[]" in message
    assert "3-13" in message  # the versions searched


def test_keys_of_another_version_are_ignored_at_every_level() -> None:
    # current_leader (v10+) inside a partition, node_endpoints (v10+) at the top: absent in v9.
    values = {
        "responses": [
            {
                "name": "t",
                "partition_responses": [
                    {"index": 0, "error_code": 0, "current_leader": {"leader_id": 1}}
                ],
            }
        ],
        "node_endpoints": [],
    }
    old = response_for(ApiKey.PRODUCE, 9, values)
    new = response_for(ApiKey.PRODUCE, 10, values)
    assert old.responses[0].partition_responses[0].index == 0
    assert new.responses[0].partition_responses[0].current_leader.leader_id == 1


def test_a_key_of_another_place_in_the_message_is_ignored() -> None:
    # OffsetFetch's handler builds topics for v1-v7 (top level) and v8+ (per group) with one
    # helper; topic_id exists only in v10's per-group topics. A client must not be cut off
    # for it: the union is the message's, at every level.
    values = {"topics": [{"name": "t", "topic_id": None, "partitions": []}]}
    response = response_for(ApiKey.OFFSET_FETCH, 1, values)
    assert response.topics[0].name == "t"


def test_a_field_of_the_request_is_not_a_field_of_the_response() -> None:
    # The union is per message and direction: acks is a Produce request field only.
    with pytest.raises(UnknownFieldError, match="acks"):
        response_for(ApiKey.PRODUCE, 9, {"acks": -1})


def test_every_unknown_key_is_named_once() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        response_for(ApiKey.HEARTBEAT, 4, {"b_typo": 0, "a_typo": 0, "error_code": 0})
    assert "'a_typo', 'b_typo'" in str(caught.value)


def test_a_class_outside_any_served_message_accepts_only_its_own_fields() -> None:
    @dataclasses.dataclass(frozen=True)
    class Loose:
        value: int

    assert build(Loose, {"value": 1}) == Loose(1)
    with pytest.raises(UnknownFieldError, match="part of no served message"):
        build(Loose, {"value": 1, "valeu": 2})
