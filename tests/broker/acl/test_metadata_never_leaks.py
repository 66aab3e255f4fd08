"""Metadata, DescribeTopicPartitions and OffsetFetch never name a topic the principal may not
Describe, whatever the ACLs (random sets, checked against the authorizer's own decision)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.protocol import ApiKey, ErrorCode
from shoal.security.acl import AclOperation, ResourceType
from tests.broker.acl.harness import AclHarness
from tests.broker.acl.matrix import CLIENT_HOST, PRINCIPAL, Acl

TOPICS = ["apple", "apricot", "banana", "berry", "cherry"]
ACLS = st.builds(
    Acl,
    resource_type=st.just("TOPIC"),
    name=st.sampled_from([*TOPICS, "ap", "b", "*", "cher"]),
    pattern_type=st.sampled_from(["LITERAL", "PREFIXED"]),
    principal=st.sampled_from([PRINCIPAL, "User:*", "User:bob"]),
    host=st.sampled_from(["*", CLIENT_HOST, "10.0.0.1"]),
    operation=st.sampled_from(["READ", "WRITE", "DESCRIBE", "CREATE", "ALL", "ALTER_CONFIGS"]),
    permission=st.sampled_from(["ALLOW", "DENY"]),
)


@settings(max_examples=40, deadline=None)
@given(acls=st.lists(ACLS, max_size=8, unique=True))
def test_no_listing_names_a_topic_it_may_not_describe(acls: list[Acl]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        harness = AclHarness(Path(directory))
        broker = harness.start()
        try:
            for topic in TOPICS:
                broker.create_topic(topic, 1)
            harness.add(*acls)
            assert broker.acls is not None
            visible = {
                t for t in TOPICS
                if broker.acls.authorizer.authorize(
                    PRINCIPAL, CLIENT_HOST, AclOperation.DESCRIBE, ResourceType.TOPIC, t)
            }  # fmt: skip
            every = harness.call(ApiKey.METADATA, 12, {"topics": None}, principal=PRINCIPAL)
            assert {t.name for t in every.topics} == visible
            named = harness.call(
                ApiKey.METADATA, 12, {"topics": [{"name": t} for t in TOPICS],
                                      "allow_auto_topic_creation": False},
                principal=PRINCIPAL,
            )  # fmt: skip
            for topic in named.topics:
                if topic.name in visible:
                    assert topic.error_code == ErrorCode.NONE and topic.partitions
                else:
                    assert topic.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
                    assert not topic.partitions and topic.topic_id.int == 0
            pages = harness.call(
                ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0,
                {"topics": [], "response_partition_limit": 100, "cursor": None},
                principal=PRINCIPAL,
            )  # fmt: skip
            assert {t.name for t in pages.topics} == visible
        finally:
            harness.stop()
