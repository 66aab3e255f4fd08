"""Registry state survives a SIGKILL of the broker: it is rebuilt from the ``_schemas`` topic
on restart (must-show 3), with ids, versions, configs, modes and soft deletes as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def _record(name: str, *fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": f, "type": ["null", "string"], "default": None} for f in fields],
        }
    )


def _register(http: httpx.Client, subject: str, schema: str, **extra: Any) -> int:
    response = http.post(
        f"/subjects/{subject}/versions", json={"schema": schema, **extra}, headers=CT
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _snapshot(http: httpx.Client) -> dict[str, Any]:
    """Everything the test changed, as the HTTP API reports it."""
    subjects = http.get("/subjects", params={"deleted": "true"}).json()
    versions = {
        s: http.get(f"/subjects/{s}/versions", params={"deleted": "true"}).json() for s in subjects
    }
    return {
        "subjects": http.get("/subjects").json(),
        "all_subjects": subjects,
        "versions": versions,
        "live_versions": {
            s: http.get(f"/subjects/{s}/versions").json() for s in http.get("/subjects").json()
        },
        "ids": {
            s: [
                http.get(f"/subjects/{s}/versions/{v}", params={"deleted": "true"}).json()["id"]
                for v in vs
            ]
            for s, vs in versions.items()
        },
        "global": http.get("/config").json(),
        "orders_config": http.get("/config/orders-value").json(),
        "mode_users": http.get("/mode/users-value").json(),
        "referencedby": http.get("/subjects/address/versions/1/referencedby").json(),
    }


def test_registry_state_survives_sigkill(broker_process: Callable[..., Any]) -> None:
    broker = broker_process()
    with httpx.Client(base_url=broker.http_url, timeout=30) as http:
        ids = [
            _register(http, "orders-value", _record("Order", "a")),
            _register(http, "orders-value", _record("Order", "a", "b")),
            _register(http, "orders-value", _record("Order", "a", "b", "c")),
            _register(http, "users-value", _record("User", "name")),
            _register(http, "gone-value", _record("Gone", "x")),
            _register(http, "orders-copy", _record("Order", "a")),  # shares an id
        ]
        address = json.dumps(
            {"type": "record", "name": "Address", "fields": [{"name": "c", "type": "string"}]}
        )
        address_id = _register(http, "address", address)
        shipment = json.dumps(
            {"type": "record", "name": "Shipment", "fields": [{"name": "to", "type": "Address"}]}
        )
        shipment_id = _register(
            http,
            "shipment",
            shipment,
            references=[{"name": "Address", "subject": "address", "version": 1}],
        )
        assert ids[5] == ids[0]
        assert http.put("/config", json={"compatibility": "FULL"}, headers=CT).status_code == 200
        assert (
            http.put("/config/orders-value", json={"compatibility": "NONE"}, headers=CT).status_code
            == 200
        )
        assert (
            http.put("/mode/users-value", json={"mode": "READONLY"}, headers=CT).status_code == 200
        )
        assert http.delete("/subjects/orders-value/versions/2").json() == 2
        assert http.delete("/subjects/gone-value").json() == [1]
        before = _snapshot(http)

    # What the test expects, not only "the same as before": a snapshot of a broken registry
    # compared with itself would pass.
    assert before["subjects"] == [
        "address",
        "orders-copy",
        "orders-value",
        "shipment",
        "users-value",
    ]
    assert before["versions"]["orders-value"] == [1, 2, 3]
    assert before["live_versions"]["orders-value"] == [1, 3]
    assert before["versions"]["gone-value"] == [1]
    assert before["global"] == {"compatibilityLevel": "FULL"}
    assert before["orders_config"] == {"compatibilityLevel": "NONE"}
    assert before["mode_users"] == {"mode": "READONLY"}
    assert before["referencedby"] == [shipment_id]

    broker.kill()
    broker.start()

    with httpx.Client(base_url=broker.http_url, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        after = _snapshot(http)
        assert after == before
        assert http.get(f"/schemas/ids/{ids[1]}").status_code == 200  # soft delete keeps ids
        assert http.get(f"/schemas/ids/{address_id}").json()["schema"] == address
        # The restored state is live: modes still refuse, and new ids do not reuse old ones.
        refused = http.post(
            "/subjects/users-value/versions",
            json={"schema": _record("User", "name", "age")},
            headers=CT,
        )
        assert refused.status_code == 422 and refused.json()["error_code"] == 42205
        new_id = _register(http, "fresh", _record("Fresh", "y"))
        assert new_id > max(*ids, address_id, shipment_id)
