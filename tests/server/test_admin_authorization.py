"""The admin API authorizes as the Kafka listener does: the HTTP basic principal, the broker's
ACLs (granted here through the Kafka API), the same operation per action as the Kafka API."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.server.admin_support import TIMEOUT_S, admin_client
from tests.support.sasl import add_user, auth_error, client_config, start_sasl_broker

pytestmark = pytest.mark.integration


def _allow(resource: ResourceType, name: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        resource,
        name,
        ResourcePatternType.LITERAL,
        "User:alice",
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def reset_body(to_latest: bool) -> dict[str, object]:
    return {"topic": "visible", "to": "latest" if to_latest else "earliest", "dry_run": False}


def test_each_action_needs_the_kafka_apis_acl(
    shoal_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    broker = start_sasl_broker(
        shoal_broker_factory,
        http_authentication="basic",
        authorizer_class_name="standard",
        super_users="User:admin",
    )
    for user in ("admin", "alice"):
        add_user(broker, user, f"{user}-secret")
    with (
        admin_client(broker, auth=("admin", "admin-secret")) as boss,
        admin_client(broker, auth=("alice", "alice-secret")) as alice,
        admin_client(broker) as nobody,
    ):
        assert nobody.get("/topics").status_code == 401  # http_auth guards the API too
        for name in ("visible", "hidden"):
            assert boss.post("/topics", json={"name": name}).status_code == 201
        # No ACLs: alice sees nothing and may do nothing, and nothing changes.
        assert alice.get("/topics").json() == {"topics": []}
        assert alice.get("/topics/visible").status_code == 403
        assert alice.post("/topics", json={"name": "mine"}).status_code == 403
        assert alice.delete("/topics/visible", params={"confirm": "visible"}).status_code == 403
        configs = {"set": {"retention.ms": "1000"}}
        assert alice.patch("/topics/visible/configs", json=configs).status_code == 403
        assert {t["name"] for t in boss.get("/topics").json()["topics"]} == {"visible", "hidden"}

        kafka_admin = AdminClient(client_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
        grants = [
            _allow(ResourceType.TOPIC, "visible", AclOperation.DESCRIBE),
            _allow(ResourceType.TOPIC, "mine", AclOperation.CREATE),
            _allow(ResourceType.TOPIC, "mine", AclOperation.DELETE),
        ]
        for future in kafka_admin.create_acls(grants).values():
            future.result(timeout=TIMEOUT_S)

        assert [t["name"] for t in alice.get("/topics").json()["topics"]] == ["visible"]
        described = alice.get("/topics/visible").json()
        assert described["configs"] is None  # Describe, but not DescribeConfigs
        assert alice.patch("/topics/visible/configs", json=configs).status_code == 403
        grant = [_allow(ResourceType.TOPIC, "visible", AclOperation.ALTER_CONFIGS)]
        for future in kafka_admin.create_acls(grant).values():
            future.result(timeout=TIMEOUT_S)
        # AlterConfigs implies DescribeConfigs, as in Kafka's authorizer.
        assert alice.get("/topics/visible").json()["configs"] is not None
        assert alice.get("/topics/hidden").status_code == 403
        # 403, not 404, for a topic she may not describe: existence is not disclosed.
        assert alice.get("/topics/unknown").status_code == 403
        assert alice.patch("/topics/visible/configs", json=configs).status_code == 200
        assert alice.post("/topics", json={"name": "mine"}).status_code == 201
        assert alice.post("/topics", json={"name": "other"}).status_code == 403
        assert alice.delete("/topics/mine", params={"confirm": "mine"}).status_code == 200
        assert alice.delete("/topics/hidden", params={"confirm": "hidden"}).status_code == 403
        # Messages: Describe alone reads and writes nothing (Fetch needs Read, Produce Write).
        assert alice.get("/topics/visible/messages").status_code == 403
        assert alice.post("/topics/visible/messages", json={"value": "v"}).status_code == 403
        assert boss.post("/topics/visible/messages", json={"value": "v"}).status_code == 201
        # Groups: none visible without Describe on them; no reset without Read.
        assert boss.post("/groups/team/offsets/reset", json=reset_body(False)).status_code == 200
        assert alice.get("/groups").json() == {"groups": []}
        assert alice.get("/groups/team").status_code == 403
        assert alice.post("/groups/team/offsets/reset", json=reset_body(True)).status_code == 403

        grants = [
            _allow(ResourceType.TOPIC, "visible", AclOperation.READ),
            _allow(ResourceType.TOPIC, "visible", AclOperation.WRITE),
            _allow(ResourceType.GROUP, "team", AclOperation.READ),
        ]
        for future in kafka_admin.create_acls(grants).values():
            future.result(timeout=TIMEOUT_S)
        assert alice.post("/topics/visible/messages", json={"value": "w"}).status_code == 201
        page = alice.get("/topics/visible/messages").json()["messages"]
        assert [m["value"]["data"] for m in page] == ["v", "w"]
        # Read on the group implies Describe, as in Kafka's authorizer.
        assert [g["group_id"] for g in alice.get("/groups").json()["groups"]] == ["team"]
        assert alice.get("/groups/team").json()["offsets"][0]["committed_offset"] == 0
        moved = alice.post("/groups/team/offsets/reset", json=reset_body(True))
        assert moved.status_code == 200
        assert alice.get("/groups/team").json()["offsets"][0]["committed_offset"] == 2
        names = {t["name"] for t in boss.get("/topics").json()["topics"]}
        assert names == {"visible", "hidden"}
        # The console's security pages: Describe on the cluster, as the Kafka APIs need.
        assert alice.get("/acls").status_code == 403
        assert alice.get("/users").status_code == 403
        acls = boss.get("/acls").json()
        assert acls["authorizer"] is True
        mine = {(a["resource_name"], a["operation"]) for a in acls["acls"]}
        assert ("visible", "READ") in mine and ("team", "READ") in mine
        assert {a["principal"] for a in acls["acls"]} == {"User:alice"}
        users = {u["user"]: u for u in boss.get("/users").json()["users"]}
        assert set(users) >= {"admin", "alice"}
        assert users["alice"]["mechanisms"] and "salt" not in json.dumps(users)
        _change_acls_and_users(broker, boss, alice, kafka_admin)
    with httpx.Client(base_url=broker.http_url) as plain:
        assert plain.get("/livez").status_code == 200


GRANT = {
    "resource_type": "TOPIC",
    "resource_name": "hidden",
    "principal": "User:alice",
    "operation": "DESCRIBE",
}


def _change_acls_and_users(
    broker: EmbeddedBroker, boss: httpx.Client, alice: httpx.Client, kafka_admin: AdminClient
) -> None:
    """ACLs and SCRAM users changed through the API: Alter on the cluster, as CreateAcls,
    DeleteAcls and AlterUserScramCredentials need; the Kafka side sees the same ACLs, and a
    user set here logs in."""
    # Alice has no Alter on the cluster: refused, nothing changes.
    assert alice.post("/acls", json=GRANT).status_code == 403
    assert (
        alice.put("/users/carol", json={"mechanism": "SCRAM-SHA-256", "password": "x"}).status_code
        == 403
    )
    assert (
        alice.request("DELETE", "/users/alice", params={"mechanism": "SCRAM-SHA-512"}).status_code
        == 403
    )
    # Bad input: 400 with the reason, nothing changes.
    for bad, error in [
        ({**GRANT, "operation": "FLY"}, "invalid_field"),
        ({**GRANT, "resource_type": "ANY"}, "invalid_field"),
        ({**GRANT, "pattern_type": "MATCH"}, "invalid_field"),
        ({**GRANT, "principal": ""}, "invalid_field"),
        ({**GRANT, "principal": "alice"}, "invalid_request"),  # no "User:" type
    ]:
        refused = boss.post("/acls", json=bad)
        assert (refused.status_code, refused.json()["error"]) == (400, error), refused.text
    assert "hidden" not in {t["name"] for t in alice.get("/topics").json()["topics"]}

    created = boss.post("/acls", json=GRANT)
    assert created.status_code == 201, created.text
    assert created.json()["acl"]["pattern_type"] == "LITERAL"
    assert "hidden" in {t["name"] for t in alice.get("/topics").json()["topics"]}
    seen = kafka_admin.describe_acls(
        AclBindingFilter(
            ResourceType.TOPIC,
            "hidden",
            ResourcePatternType.LITERAL,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
    ).result(TIMEOUT_S)
    assert [(b.principal, b.operation) for b in seen] == [("User:alice", AclOperation.DESCRIBE)]
    deleted = boss.request("DELETE", "/acls", json=GRANT)
    assert deleted.status_code == 200, deleted.text
    assert [a["resource_name"] for a in deleted.json()["deleted"]] == ["hidden"]
    assert boss.request("DELETE", "/acls", json=GRANT).json()["error"] == "acl_not_found"
    assert "hidden" not in {t["name"] for t in alice.get("/topics").json()["topics"]}

    # A user set through the API logs in (HTTP basic checks the SCRAM credential) until
    # deleted; the password is never echoed.
    body = {"mechanism": "SCRAM-SHA-256", "password": "carol-secret", "iterations": 4096}
    for bad, error in [
        ({**body, "mechanism": "PLAIN"}, "unsupported_sasl_mechanism"),
        ({**body, "iterations": 100}, "unacceptable_credential"),
        ({**body, "password": ""}, "invalid_field"),
    ]:
        refused = boss.put("/users/carol", json=bad)
        assert (refused.status_code, refused.json()["error"]) == (400, error), refused.text
    assert "carol" not in {u["user"] for u in boss.get("/users").json()["users"]}
    answer = boss.put("/users/carol", json=body)
    assert answer.status_code == 200, answer.text
    assert "carol-secret" not in answer.text
    with admin_client(broker, auth=("carol", "carol-secret")) as carol:
        assert carol.get("/topics").status_code == 200
    carol_kafka = client_config(broker, "SCRAM-SHA-256", "carol", "carol-secret")
    assert AdminClient(carol_kafka).list_topics(timeout=TIMEOUT_S).topics is not None
    gone = boss.request("DELETE", "/users/carol", params={"mechanism": "SCRAM-SHA-256"})
    assert gone.status_code == 200, gone.text
    assert "carol" not in {u["user"] for u in boss.get("/users").json()["users"]}
    # (HTTP basic remembers a verified password for http_auth.REMEMBER_S; Kafka asks again.)
    assert auth_error(carol_kafka).code() == KafkaError._AUTHENTICATION
    again = boss.request("DELETE", "/users/carol", params={"mechanism": "SCRAM-SHA-256"})
    assert (again.status_code, again.json()["error"]) == (404, "resource_not_found")
