"""Subject names as clients send them: percent-encoded, holding ``/``, ``%``, spaces and
non-ASCII letters, through the broker's real HTTP server (uvicorn decodes the path before
routing; a decoded ``%2F`` must not split the subject).

confluent-kafka's Protobuf serializer registers imports under their file path
(``google/protobuf/timestamp.proto``), so ``/`` in a subject is the everyday case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shoal.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

# A literal "%2F" in the name catches a server that decodes twice; "/" one that splits.
NAME = "team/orders v2 %2F 100% ünïcødé/ß.proto"
CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}],
    }
)


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data = Path(tmp_path_factory.mktemp("subject-names")) / "data"
    with (
        EmbeddedBroker(str(data)) as broker,
        httpx.Client(base_url=broker.http_url, headers=CT, timeout=30) as client,
    ):
        yield client


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.request.url, response.text)
    return response.json()


def test_every_subject_route_takes_an_encoded_name(http: httpx.Client) -> None:
    s = quote(NAME, safe="")  # as confluent-kafka's client encodes it
    assert "%2F" in s and "%25" in s and "%20" in s

    registered = _ok(http.post(f"/subjects/{s}/versions", json={"schema": V1}))
    first = registered["id"]
    assert NAME in _ok(http.get("/subjects"))
    found = _ok(http.post(f"/subjects/{s}?normalize=true", json={"schema": V1}))
    assert (found["subject"], found["version"], found["id"]) == (NAME, 1, first)
    assert _ok(http.get(f"/subjects/{s}/versions")) == [1]
    assert _ok(http.get(f"/subjects/{s}/versions/1"))["subject"] == NAME
    assert _ok(http.get(f"/subjects/{s}/versions/latest"))["id"] == first
    assert json.loads(http.get(f"/subjects/{s}/versions/1/schema").text) == json.loads(V1)
    assert _ok(http.get(f"/subjects/{s}/versions/1/referencedby")) == []
    assert _ok(http.get(f"/schemas/ids/{first}/subjects")) == [NAME]

    for path in (
        f"/compatibility/subjects/{s}/versions/latest",
        f"/compatibility/subjects/{s}/versions",
    ):
        assert _ok(http.post(path, json={"schema": V2})) == {"is_compatible": True}

    assert _ok(http.put(f"/config/{s}", json={"compatibility": "FULL"})) == {
        "compatibility": "FULL"
    }
    assert _ok(http.get(f"/config/{s}")) == {"compatibilityLevel": "FULL"}
    assert _ok(http.delete(f"/config/{s}")) == {"compatibilityLevel": "FULL"}
    assert http.get(f"/config/{s}").json()["error_code"] == 40408
    assert http.delete(f"/config/{s}").json()["error_code"] == 40401  # as Confluent answers

    assert _ok(http.put(f"/mode/{s}", json={"mode": "READONLY"})) == {"mode": "READONLY"}
    assert _ok(http.get(f"/mode/{s}")) == {"mode": "READONLY"}
    refused = http.post(f"/subjects/{s}/versions", json={"schema": V2})
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
    assert _ok(http.delete(f"/mode/{s}")) == {"mode": "READONLY"}
    assert http.get(f"/mode/{s}").json()["error_code"] == 40409

    assert _ok(http.post(f"/subjects/{s}/versions", json={"schema": V2}))["id"] != first
    assert _ok(http.delete(f"/subjects/{s}/versions/2")) == 2
    assert _ok(http.delete(f"/subjects/{s}/versions/2?permanent=true")) == 2
    assert _ok(http.get(f"/subjects/{s}/versions?deleted=true")) == [1]

    assert _ok(http.delete(f"/subjects/{s}")) == [1]
    assert NAME not in _ok(http.get("/subjects"))
    assert NAME in _ok(http.get("/subjects?deleted=true"))
    assert _ok(http.delete(f"/subjects/{s}?permanent=true")) == [1]
    assert NAME not in _ok(http.get("/subjects?deleted=true"))
    gone = http.get(f"/subjects/{s}/versions")
    assert (gone.status_code, gone.json()["error_code"]) == (404, 40401)
    assert gone.json()["message"] == f"Subject '{NAME}' not found."


def test_names_differing_only_in_encoding_are_different_subjects(http: httpx.Client) -> None:
    """``a/b`` and ``a%2Fb`` (the literal characters) are two subjects, each reached by its
    own escape; and ``a`` is not ``a/b``'s prefix route."""
    slash, literal = "a/b", "a%2Fb"
    one = _ok(http.post(f"/subjects/{quote(slash, safe='')}/versions", json={"schema": V1}))
    assert http.get(f"/subjects/{quote(literal, safe='')}/versions").json()["error_code"] == 40401
    assert http.get("/subjects/a/versions").json()["error_code"] == 40401
    assert _ok(http.get(f"/subjects/{quote(slash, safe='')}/versions/1"))["id"] == one["id"]
