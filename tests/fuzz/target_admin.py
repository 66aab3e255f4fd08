"""The admin API's parameters: paths, query strings and JSON bodies of every route.

Property: every request gets an answer below 500, and a refusal (4xx) is the API's JSON error
``{"error", "message"}``; no request hangs (the client's timeout turns a hang into a crash).

An embedded broker (started once per fuzzing process, in a temporary directory) serves the API
with one topic, ``fuzz``, holding a few records, so reads and offset resets reach real data.
Each input becomes one request: a route, a topic or group name (one of a few, or fuzzed text),
query parameters named as the routes read them with fuzzed values, and a JSON object body whose
fields are the routes' own names with values of every JSON type (or, sometimes, raw bytes).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from typing import Any, Final
from urllib.parse import quote

import atheris
import httpx

from shoal.embedded import EmbeddedBroker
from shoal.server.admin.access import CSRF_HEADER
from shoal.server.admin.routes import ROUTES

REQUEST_TIMEOUT_S: Final = 10.0
"""Far above any answer's time on this machine: past it the request is taken to hang."""
TOPIC: Final = "fuzz"
NAMES: Final = (TOPIC, "missing", "__consumer_offsets", "fuzz-group", "a" * 300, "..", "%00")
QUERY_NAMES: Final = (
    "partition", "from", "cursor", "limit", "offset", "timestamp", "confirm", "key", "value",
    "header", "oldest", "newest",
)  # fmt: skip
BODY_NAMES: Final = (
    "name", "partitions", "configs", "set", "delete", "to", "value", "key", "headers", "topic",
    "dry_run", "partition", "replication_factor",
)  # fmt: skip
DEPTH_MAX: Final = 3
"""How deep fuzzed JSON values nest: deep enough to reach every field check."""

_state: dict[str, Any] = {}


def _client() -> httpx.Client:
    if "client" not in _state:
        data_dir = tempfile.mkdtemp(prefix="shoal-fuzz-admin-")
        broker = EmbeddedBroker(data_dir).start()
        client = httpx.Client(
            base_url=f"{broker.http_url}/api/v1",
            headers={CSRF_HEADER: "1"},
            timeout=REQUEST_TIMEOUT_S,
        )
        client.post("/topics", json={"name": TOPIC, "partitions": 2}).raise_for_status()
        for n in range(3):
            message = {"key": f"k{n}", "value": f"v{n}"}
            client.post(f"/topics/{TOPIC}/messages", json=message).raise_for_status()

        # Only the directory is cleaned at exit: libFuzzer ends the process with exit() once its
        # runs are done, when the executor a clean broker stop needs is already shut down.
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
        _state["client"] = client
    client: httpx.Client = _state["client"]
    return client


def _json_value(fdp: atheris.FuzzedDataProvider, depth: int) -> Any:
    kind = fdp.ConsumeIntInRange(0, 7 if depth < DEPTH_MAX else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-8, 64)
    if kind == 3:
        return fdp.ConsumeInt(9)  # up to 2^71: past every integer limit
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 5:
        return fdp.ConsumeRegularFloat()
    if kind == 6:
        return [_json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    names = (*BODY_NAMES, "k", "v")
    return {
        names[fdp.ConsumeIntInRange(0, len(names) - 1)]: _json_value(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 4))
    }


def _name(fdp: atheris.FuzzedDataProvider) -> str:
    pick = fdp.ConsumeIntInRange(0, len(NAMES))
    if pick < len(NAMES):
        return NAMES[pick]
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 30))


def _request(fdp: atheris.FuzzedDataProvider) -> tuple[str, str, dict[str, str], bytes]:
    path, method, _action = ROUTES[fdp.ConsumeIntInRange(0, len(ROUTES) - 1)]
    # Dots escaped too: a client resolves a bare ".." segment before sending, which would aim
    # the request outside the API instead of at a topic named "..".
    name = quote(_name(fdp), safe="").replace(".", "%2E")
    path = path.replace("{topic}", name).replace("{group}", name)
    query = {
        QUERY_NAMES[fdp.ConsumeIntInRange(0, len(QUERY_NAMES) - 1)]: fdp.ConsumeUnicodeNoSurrogates(
            fdp.ConsumeIntInRange(0, 24)
        )
        for _ in range(fdp.ConsumeIntInRange(0, 3))
    }
    if fdp.ConsumeIntInRange(0, 7) == 0:
        body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
    else:
        fields = {
            BODY_NAMES[fdp.ConsumeIntInRange(0, len(BODY_NAMES) - 1)]: _json_value(fdp, 0)
            for _ in range(fdp.ConsumeIntInRange(0, 5))
        }
        body = json.dumps(fields).encode()
    return method, path, query, body


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    method, path, query, body = _request(fdp)
    content = body if method in ("POST", "PATCH") else None
    headers = {"Content-Type": "application/json"} if content is not None else {}
    response = _client().request(method, path, params=query, content=content, headers=headers)
    what = f"{method} {path} {query} {body[:200]!r}"
    if response.status_code >= 500:
        raise AssertionError(f"{what} -> {response.status_code} {response.text[:500]}")
    if response.status_code >= 400:
        error = response.json()
        if not (isinstance(error.get("error"), str) and isinstance(error.get("message"), str)):
            raise AssertionError(f"{what} -> {response.status_code} without the error shape")
