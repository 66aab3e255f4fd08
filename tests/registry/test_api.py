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
