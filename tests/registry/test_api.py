"""The REST API over an in-memory log: Confluent's paths, bodies and error codes, and bad input
that is refused without changing anything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shoal.registry import MemorySchemaLog, RegistryService

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}],
    }
)


def _register(client: Any, subject: str, schema: str, **extra: Any) -> Any:
    return client.post(
        f"/subjects/{subject}/versions", json={"schema": schema, **extra}, headers=CT
    )


def test_register_is_idempotent_and_ids_are_global(client: Any) -> None:
    first = _register(client, "s", V1)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
    assert _register(client, "s", V1).json() == first.json()
    assert _register(client, "other", V1).json() == first.json()
    assert _register(client, "s", V2).json()["id"] != first.json()["id"]
    assert client.get("/subjects/s/versions").json() == [1, 2]
    latest = client.get("/subjects/s/versions/latest").json()
    assert latest["version"] == 2 and latest["subject"] == "s" and "schemaType" not in latest
    assert client.get(f"/schemas/ids/{first.json()['id']}/subjects").json() == ["other", "s"]
    lookup = client.post("/subjects/s", json={"schema": V1}, headers=CT).json()
    assert lookup["version"] == 1
    assert client.get("/schemas/types").json() == ["PROTOBUF", "JSON", "AVRO"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/s/versions/9", None, 404, 40402),
        ("GET", "/subjects/s/versions/zero", None, 422, 42202),
        ("GET", "/subjects/s/versions/0", None, 422, 42202),
        ("GET", "/schemas/ids/999", None, 404, 40403),
        ("POST", "/subjects/s", {"schema": V2}, 404, 40403),
        ("POST", "/subjects/s/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type": "nope"}'}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "{}", "schemaType": "XML"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"nothing": 1}, 422, 42201),
        (
            "POST",
            "/subjects/s/versions",
            {"schema": '{"type": 5}', "schemaType": "JSON"},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/s/versions",
            {"schema": "message {", "schemaType": "PROTOBUF"},
            422,
            42201,
        ),
        ("POST", "/subjects/s/versions", {"schema": '"int"'}, 409, 409),
        (
            "POST",
            "/subjects/s/versions",
            {"schema": V1, "references": [{"name": "x", "subject": "nope", "version": 1}]},
            422,
            42201,
        ),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("PUT", "/mode", {"mode": "WRITEONLY"}, 422, 42204),
        ("GET", "/config/s", None, 404, 40408),
        ("DELETE", "/subjects/nope", None, 404, 40401),
        ("DELETE", "/subjects/s?permanent=true", None, 404, 40405),
        ("DELETE", "/subjects/s/versions/1?permanent=true", None, 404, 40407),
        ("POST", "/compatibility/subjects/nope/versions/latest", {"schema": V1}, 404, 40401),
        ("GET", "/no/such/path", None, 404, 404),
    ],
)
def test_bad_requests_get_confluent_codes_and_change_nothing(
    client: Any,
    memory_log: MemorySchemaLog,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: int,
) -> None:
    _register(client, "s", V1)
    before = list(memory_log.records)
    response = client.request(method, path, json=body, headers=CT)
    assert (response.status_code, response.json()["error_code"]) == (status, code)
    assert isinstance(response.json()["message"], str)
    assert memory_log.records == before


def test_malformed_json_and_wrong_content_type(client: Any, memory_log: MemorySchemaLog) -> None:
    response = client.post("/subjects/s/versions", content=b"{oops", headers=CT)
    assert (response.status_code, response.json()["error_code"]) == (400, 400)
    response = client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": "text/xml"},
    )
    assert (response.status_code, response.json()["error_code"]) == (415, 415)
    ok = client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": "application/json"},
    )
    assert ok.status_code == 200
    assert len(memory_log.records) == 1


def test_soft_then_hard_delete_and_references(client: Any) -> None:
    base = _register(client, "base", V1).json()["id"]
    user = json.dumps({"type": "record", "name": "U", "fields": [{"name": "r", "type": "R"}]})
    refs = [{"name": "R", "subject": "base", "version": 1}]
    user_id = _register(client, "user", user, references=refs).json()["id"]
    assert client.get("/subjects/base/versions/1/referencedby").json() == [user_id]
    blocked = client.delete("/subjects/base")
    assert blocked.json()["error_code"] == 42206
    assert client.delete("/subjects/user").json() == [1]
    assert client.get("/subjects").json() == ["base"]
    assert client.get("/subjects?deleted=true").json() == ["base", "user"]
    assert client.delete("/subjects/user").json()["error_code"] == 40404
    assert client.delete("/subjects/user?permanent=true").json() == [1]
    assert client.get(f"/schemas/ids/{user_id}").json()["error_code"] == 40403
    assert client.delete("/subjects/base/versions/1").json() == 1
    assert client.get(f"/schemas/ids/{base}").status_code == 200  # soft delete keeps the id


def test_compatibility_endpoint_and_configs(client: Any) -> None:
    _register(client, "s", V1)
    narrowing = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    )
    result = client.post(
        "/compatibility/subjects/s/versions/latest?verbose=true",
        json={"schema": narrowing},
        headers=CT,
    ).json()
    assert result["is_compatible"] is False and result["messages"]
    assert client.post(
        "/compatibility/subjects/s/versions", json={"schema": V2}, headers=CT
    ).json() == {"is_compatible": True}
    assert client.put("/config/s", json={"compatibility": "none"}, headers=CT).json() == {
        "compatibility": "NONE"
    }
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert _register(client, "s", narrowing).status_code == 200
    assert client.delete("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config/s?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}


def test_readonly_mode_refuses_writes(client: Any, memory_log: MemorySchemaLog) -> None:
    assert client.put("/mode/s", json={"mode": "READONLY"}, headers=CT).json() == {
        "mode": "READONLY"
    }
    before = list(memory_log.records)
    assert _register(client, "s", V1).json()["error_code"] == 42205
    assert memory_log.records == before
    assert client.get("/mode").json() == {"mode": "READWRITE"}


def test_failed_log_write_changes_nothing(client: Any, memory_log: MemorySchemaLog) -> None:
    memory_log.fail_appends = True
    response = _register(client, "s", V1)
    assert (response.status_code, response.json()["error_code"]) == (500, 50001)
    memory_log.fail_appends = False
    assert client.get("/subjects").json() == []


def test_replay_rebuilds_the_same_state(client: Any, memory_log: MemorySchemaLog) -> None:
    _register(client, "s", V1)
    _register(client, "s", V2)
    client.put("/config/s", json={"compatibility": "FULL"}, headers=CT)
    client.delete("/subjects/s/versions/1")
    replayed = RegistryService()
    replayed.open(memory_log)
    assert replayed.versions("s", include_deleted=True) == [1, 2]
    assert replayed.versions("s", include_deleted=False) == [2]
    assert replayed.config("s", default_to_global=False) == {"compatibilityLevel": "FULL"}


def test_not_ready_answers_50003() -> None:
    from starlette.testclient import TestClient

    from shoal.registry import build_registry_app

    with TestClient(build_registry_app(RegistryService())) as fresh:
        response = fresh.get("/subjects")
    assert (response.status_code, response.json()["error_code"]) == (503, 50003)


@pytest.mark.parametrize(
    ("subject", "body", "status", "code"),
    [
        # The schema is checked first, whether or not the subject exists (Confluent's order).
        ("s", {"schema": "{not json"}, 422, 42201),
        ("nope", {"schema": '{"type": "nope"}'}, 422, 42201),
        ("s", {"schema": "message {", "schemaType": "PROTOBUF"}, 422, 42201),
        ("s", {"schema": '{"type": 5}', "schemaType": "JSON"}, 422, 42201),
        (
            "s",
            {"schema": V1, "references": [{"name": "x", "subject": "nope", "version": 1}]},
            422,
            42201,
        ),
        # A valid schema: 40401 for a subject without versions, 40403 for one without it.
        ("nope", {"schema": V1}, 404, 40401),
        ("s", {"schema": V2}, 404, 40403),
    ],
)
def test_lookup_checks_the_schema_before_the_subject(
    client: Any, subject: str, body: Any, status: int, code: int
) -> None:
    _register(client, "s", V1)
    response = client.post(f"/subjects/{subject}", json=body, headers=CT)
    assert (response.status_code, response.json()["error_code"]) == (status, code)


# The same Avro record written three ways: key order, shorthand types, whitespace.
V1_REORDERED = json.dumps(
    {"fields": [{"type": {"type": "int"}, "name": "a"}], "name": "R", "type": "record"}, indent=2
)
JSON_A = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
JSON_A_REORDERED = '{ "properties" : { "a" : { "type" : "string" } }, "type" : "object" }'


def test_normalize_maps_equal_schemas_to_one_version(client: Any) -> None:
    first = _register(client, "s", V1).json()["id"]
    found = client.post("/subjects/s?normalize=true", json={"schema": V1_REORDERED}, headers=CT)
    assert (found.json()["version"], found.json()["id"]) == (1, first)
    again = client.post(
        "/subjects/s/versions?normalize=true", json={"schema": V1_REORDERED}, headers=CT
    )
    assert again.json()["id"] == first
    assert client.get("/subjects/s/versions").json() == [1]
    # A schema registered with normalize is stored in its normal form.
    normal = client.post(
        "/subjects/n/versions?normalize=True", json={"schema": V1_REORDERED}, headers=CT
    ).json()["id"]
    assert json.loads(client.get(f"/schemas/ids/{normal}").json()["schema"]) == json.loads(V1)
    assert normal == first


def test_normalize_config_flag(client: Any) -> None:
    assert client.put("/config/j", json={"normalize": True}, headers=CT).json() == {
        "normalize": True
    }
    assert client.get("/config/j").json() == {"normalize": True}
    assert client.get("/config/j?defaultToGlobal=true").json() == {
        "compatibilityLevel": "BACKWARD",
        "normalize": True,
    }
    # Merged as Confluent does: setting the level keeps the flag.
    assert client.put("/config/j", json={"compatibility": "FULL"}, headers=CT).json() == {
        "compatibility": "FULL",
        "normalize": True,
    }
    first = _register(client, "j", JSON_A, schemaType="JSON").json()["id"]
    stored = client.get(f"/schemas/ids/{first}").json()["schema"]
    assert stored == json.dumps(json.loads(JSON_A), sort_keys=True, separators=(",", ":"))
    assert _register(client, "j", JSON_A_REORDERED, schemaType="JSON").json()["id"] == first
    found = client.post("/subjects/j", json={"schema": JSON_A, "schemaType": "JSON"}, headers=CT)
    assert found.json()["version"] == 1
    bad = client.put("/config/j", json={"normalize": "yes"}, headers=CT)
    assert (bad.status_code, bad.json()["error_code"]) == (422, 422)
    assert client.delete("/config/j").json() == {"compatibilityLevel": "FULL", "normalize": True}
    assert client.put("/config", json={"normalize": True}, headers=CT).json() == {"normalize": True}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD", "normalize": True}


def test_delete_global_mode_returns_to_readwrite(client: Any) -> None:
    assert client.delete("/mode").json() == {"mode": "READWRITE"}
    assert client.put("/mode", json={"mode": "READONLY"}, headers=CT).json() == {"mode": "READONLY"}
    assert _register(client, "s", V1).json()["error_code"] == 42205
    assert client.delete("/mode").json() == {"mode": "READONLY"}
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert _register(client, "s", V1).status_code == 200
    # A subject without a mode of its own: Confluent answers 40401.
    missing = client.delete("/mode/s")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40401)


def test_schemas_by_guid(client: Any) -> None:
    import hashlib
    import uuid

    registered = _register(client, "s", V1).json()
    guid = registered["guid"]
    # Confluent's current register answer: the stored version, not only the id.
    assert registered == {"id": registered["id"], "version": 1, "guid": guid, "schema": V1}
    assert client.get("/subjects/s/versions/1").json()["guid"] == guid
    # Confluent's guid: the MD5 of the schema text (and references), as a UUID.
    assert guid == str(uuid.UUID(bytes=hashlib.md5(V1.encode()).digest()))
    assert client.get(f"/schemas/ids/{registered['id']}").json()["guid"] == guid
    by_guid = client.get(f"/schemas/guids/{guid}").json()
    assert by_guid == {"schema": V1, "guid": guid}
    assert client.get(f"/schemas/guids/{guid}/ids").json() == [
        {"context": ".", "id": registered["id"]}
    ]
    unknown = str(uuid.uuid4())
    missing = client.get(f"/schemas/guids/{unknown}")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert client.get(f"/schemas/guids/{unknown}/ids").json() == []
