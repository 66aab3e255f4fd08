"""The admin API authorizes as the Kafka listener does: the HTTP basic principal, the broker's
ACLs (granted here through the Kafka API), the same operation per action as the Kafka API."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from shoal.embedded import EmbeddedBroker
from tests.server.admin_support import TIMEOUT_S, admin_client
from tests.support.sasl import add_user, client_config, start_sasl_broker

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
    with httpx.Client(base_url=broker.http_url) as plain:
        assert plain.get("/livez").status_code == 200
