"""The admin API's OpenAPI document: it names exactly the routes served, every reference in it
resolves, its schemas are valid JSON Schema (2020-12, OpenAPI 3.1's dialect), and live answers
match them. (openapi-spec-validator is not installed: this is the structural check.)"""

from __future__ import annotations

import re
from typing import Any, Final

import httpx
import jsonschema
import pytest

from shoal.embedded import EmbeddedBroker
from shoal.server.admin.openapi import openapi_document
from shoal.server.admin.routes import ROUTES
from tests.server.admin_support import admin_client

pytestmark = pytest.mark.integration

METHODS: Final = frozenset({"get", "post", "put", "patch", "delete"})


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with every ``$ref`` replaced by what it points at (KeyError if dangling)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(document, target)
        return {key: _resolve(document, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(document, item) for item in node]
    return node


def test_document_names_exactly_the_routes_and_is_well_formed() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == {(path, method) for path, method, _ in ROUTES}
    resolved = _resolve(document, document)  # raises on a dangling $ref
    ids = []
    for path, item in resolved["paths"].items():
        declared_in_path = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            ids.append(operation["operationId"])
            assert operation["responses"], (path, method)
            params = operation.get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == declared_in_path
            if method != "get":  # state-changing: the CSRF header is documented
                assert any(p["in"] == "header" for p in params), (path, method)
            for response in operation["responses"].values():
                for content in response.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(content["schema"])
            if "requestBody" in operation:
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                jsonschema.Draft202012Validator.check_schema(body)
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_served_document_and_live_answers_match(shoal_broker: EmbeddedBroker) -> None:
    with admin_client(shoal_broker) as api:
        served = api.get("/openapi.json")
        assert served.status_code == 200
        document = served.json()
        assert document == openapi_document()
        resolved = _resolve(document, document)
        assert api.post("/topics", json={"name": "documented"}).status_code == 201
        for path, status in [
            ("/topics", "200"),
            ("/topics/documented", "200"),
            ("/groups", "200"),
            ("/broker", "200"),
            ("/acls", "200"),
            ("/users", "200"),
            ("/topics/nope", "404"),
        ]:
            answer = api.get(path)
            assert str(answer.status_code) == status
            template = "/topics/{topic}" if path.startswith("/topics/") else path
            response = resolved["paths"][template]["get"]["responses"][status]
            schema = response["content"]["application/json"]["schema"]
            jsonschema.validate(answer.json(), schema)
    with httpx.Client(base_url=shoal_broker.http_url) as root:  # the registry still answers
        assert root.get("/subjects").status_code == 200
