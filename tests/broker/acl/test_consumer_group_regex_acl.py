"""A KIP-848 regex subscription resolves only to topics its principal may Describe (Kafka's
rule): alice, allowed to describe ``orders`` only, subscribes to ``orders|secret`` and is
assigned ``orders`` alone; the super user's regex member gets both."""

from __future__ import annotations

from pathlib import Path

from shoal.security.acl_authorizer import AuthorizerConfig
from tests.broker.acl.harness import AclHarness
from tests.broker.acl.matrix import PRINCIPAL, SUPER_USER, Acl

HEARTBEAT = 68


def _join(harness: AclHarness, group: str, member: str, principal: str) -> dict[str, list[int]]:
    answer = harness.call(
        HEARTBEAT,
        1,
        {
            "group_id": group,
            "member_id": member,
            "member_epoch": 0,
            "rebalance_timeout": 30000,
            "subscribed_topic_regex": "orders|secret",
            "topic_partitions": [],
        },
        principal=principal,
    )
    assert int(answer.error_code) == 0, answer.error_message
    broker = harness.broker
    assert broker is not None
    names = {t.topic_id: t.name for t in broker.topics}
    return {names[tp.topic_id]: sorted(tp.partitions) for tp in answer.assignment.topic_partitions}


def test_regex_resolves_to_describable_topics_only(tmp_path: Path) -> None:
    harness = AclHarness(tmp_path / "data", AuthorizerConfig(super_users=frozenset({SUPER_USER})))
    broker = harness.start()
    try:
        broker.create_topic("orders", 2)
        broker.create_topic("secret", 2)
        harness.add(
            Acl("GROUP", "g-alice", "LITERAL", PRINCIPAL, "*", "READ", "ALLOW"),
            Acl("TOPIC", "orders", "LITERAL", PRINCIPAL, "*", "DESCRIBE", "ALLOW"),
        )
        assert _join(harness, "g-alice", "alice-1", PRINCIPAL) == {"orders": [0, 1]}
        assert _join(harness, "g-admin", "admin-1", SUPER_USER) == {
            "orders": [0, 1],
            "secret": [0, 1],
        }
    finally:
        harness.stop()
