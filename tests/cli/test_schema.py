"""``shoal schema`` against the embedded broker's registry, and ``shoal registry`` standalone."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shoal.embedded import EmbeddedBroker
from tests.cli.support import Cli, closed_port, shoal_script
from tests.support.sasl import add_user

pytestmark = pytest.mark.integration

V1 = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "long"}],
}
V2_COMPATIBLE = {  # a new field with a default: BACKWARD compatible
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": "string", "default": ""},
    ],
}
V2_INCOMPATIBLE = {  # a new field without a default: new readers cannot read old data
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "long"}, {"name": "qty", "type": "int"}],
}


@pytest.fixture
def url(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> str:
    # Through the environment, so that the tests also check the SHOAL_REGISTRY_URL default.
    monkeypatch.setenv("SHOAL_REGISTRY_URL", broker.http_url)
    return broker.http_url


def write(tmp_path: Path, name: str, schema: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(schema))
    return str(path)


def test_register_get_list_check_delete_round_trip(cli: Cli, url: str, tmp_path: Path) -> None:
    v1 = write(tmp_path, "v1.avsc", V1)
    first = cli("schema", "register", "orders-value", "--file", v1)
    assert first.code == 0, first.err
    schema_id = int(first.out)
    # Registering the same schema again is idempotent: the same id.
    assert cli("schema", "register", "orders-value", "--file", v1).out.strip() == str(schema_id)

    got = cli("schema", "get", "orders-value")
    assert got.code == 0, got.err
    assert json.loads(got.out) == V1
    record = json.loads(
        cli("schema", "get", "orders-value", "--version", "1", "--format", "json").out
    )
    assert record["subject"] == "orders-value"
    assert record["version"] == 1
    assert record["id"] == schema_id
    by_id = json.loads(cli("schema", "get", "--id", str(schema_id), "--format", "json").out)
    assert by_id["id"] == schema_id
    assert json.loads(by_id["schema"]) == V1

    good = cli(
        "schema", "check", "orders-value", "--file", write(tmp_path, "ok.avsc", V2_COMPATIBLE)
    )
    assert (good.code, good.out.strip()) == (0, "compatible")
    bad = cli(
        "schema", "check", "orders-value", "--file", write(tmp_path, "bad.avsc", V2_INCOMPATIBLE)
    )
    assert bad.code == 1
    assert bad.lines[0] == "incompatible"
    assert len(bad.lines) > 1, "the registry's reasons are shown"
    assert "qty" in bad.out

    # Registering the incompatible one is refused with Confluent's 409.
    refused = cli(
        "schema", "register", "orders-value", "--file", write(tmp_path, "b.avsc", V2_INCOMPATIBLE)
    )
    assert refused.code == 1
    assert refused.err.startswith("shoal schema register: ")
    assert refused.err.rstrip().endswith("(409)")

    second = cli(
        "schema", "register", "orders-value", "--file", write(tmp_path, "v2.avsc", V2_COMPATIBLE)
    )
    assert second.code == 0, second.err
    assert int(second.out) != schema_id
    cli("schema", "register", "payments-value", "--file", v1)

    assert cli("schema", "list").lines == ["orders-value", "payments-value"]
    assert cli("schema", "list", "--prefix", "pay").lines == ["payments-value"]
    assert cli("schema", "list", "--versions").lines == [
        "orders-value\t1",
        "orders-value\t2",
        "payments-value\t1",
    ]

    deleted = cli("schema", "delete", "payments-value")
    assert deleted.code == 0, deleted.err
    assert cli("schema", "list").lines == ["orders-value"]
    assert cli("schema", "list", "--deleted").lines == ["orders-value", "payments-value"]
    hard = cli("schema", "delete", "payments-value", "--permanent")
    assert hard.code == 0, hard.err
    assert cli("schema", "list", "--deleted").lines == ["orders-value"]

    one = cli("schema", "delete", "orders-value", "--version", "2", "--permanent")
    assert one.code == 0, one.err
    assert cli("schema", "list", "--versions").lines == ["orders-value\t1"]


def test_config_show_and_set(cli: Cli, url: str, tmp_path: Path) -> None:
    assert cli("schema", "config").out.strip() == "BACKWARD"
    cli("schema", "register", "orders-value", "--file", write(tmp_path, "v1.avsc", V1))
    assert cli("schema", "config", "orders-value").out.strip() == "BACKWARD"  # the global default

    set_none = cli("schema", "config", "orders-value", "--set", "none")
    assert (set_none.code, set_none.out.strip()) == (0, "NONE")
    assert cli("schema", "config", "orders-value").out.strip() == "NONE"
    assert cli("schema", "config").out.strip() == "BACKWARD"
    # Under NONE the incompatible schema is accepted.
    incompatible = write(tmp_path, "bad.avsc", V2_INCOMPATIBLE)
    assert cli("schema", "check", "orders-value", "--file", incompatible).code == 0
    assert cli("schema", "register", "orders-value", "--file", incompatible).code == 0

    assert cli("schema", "config", "--set", "FULL").out.strip() == "FULL"
    assert cli("schema", "config").out.strip() == "FULL"
    assert cli("schema", "config", "--set", "SIDEWAYS").code == 2


def test_registry_errors_are_one_line_with_confluent_codes(
    cli: Cli, url: str, tmp_path: Path
) -> None:
    missing = cli("schema", "get", "nope")
    assert missing.code == 1
    assert missing.err == "shoal schema get: subject 'nope' not found (40401)\n"
    assert missing.out == ""

    cli("schema", "register", "orders-value", "--file", write(tmp_path, "v1.avsc", V1))
    no_version = cli("schema", "get", "orders-value", "--version", "7")
    assert no_version.code == 1
    assert no_version.err.rstrip().endswith("(40402)")
    assert cli("schema", "get", "--id", "999").err.rstrip().endswith("(40403)")

    invalid = tmp_path / "broken.avsc"
    invalid.write_text('{"type": "record", "name": "X"')
    bad = cli("schema", "register", "orders-value", "--file", str(invalid))
    assert bad.code == 1
    assert bad.err.rstrip().endswith("(42201)")
    assert "Traceback" not in bad.err

    # Usage errors: exit 2.
    assert cli("schema", "get").code == 2
    assert cli("schema", "get", "orders-value", "--id", "1").code == 2
    assert cli("schema", "get", "orders-value", "--version", "0").code == 2
    assert cli("schema", "register", "x", "--file", "f", "--reference", "nonsense").code == 2

    gone = cli("schema", "register", "x", "--file", str(tmp_path / "absent.avsc"))
    assert gone.code == 1
    assert gone.err.startswith("shoal schema register: cannot read schema file")


def test_references_and_types(cli: Cli, url: str, tmp_path: Path) -> None:
    common = {
        "type": "record",
        "name": "Money",
        "namespace": "x",
        "fields": [{"name": "cents", "type": "long"}],
    }
    assert (
        cli("schema", "register", "money", "--file", write(tmp_path, "money.avsc", common)).code
        == 0
    )
    order = {
        "type": "record",
        "name": "Order",
        "namespace": "x",
        "fields": [{"name": "total", "type": "x.Money"}],
    }
    result = cli(
        "schema",
        "register",
        "orders-value",
        "--file",
        write(tmp_path, "o.avsc", order),
        "--reference",
        "x.Money=money:1",
    )
    assert result.code == 0, result.err
    record = json.loads(cli("schema", "get", "orders-value", "--format", "json").out)
    assert record["references"] == [{"name": "x.Money", "subject": "money", "version": 1}]

    # The type follows the file's suffix (.json is JSON Schema) unless --type says otherwise.
    json_schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert (
        cli("schema", "register", "j", "--file", write(tmp_path, "s.json", json_schema)).code == 0
    )
    assert json.loads(cli("schema", "get", "j", "--format", "json").out)["schemaType"] == "JSON"


def test_unreachable_registry(cli: Cli, tmp_path: Path) -> None:
    result = cli("schema", "list", "--registry-url", f"http://127.0.0.1:{closed_port()}")
    assert result.code == 1
    assert result.err.startswith(
        "shoal schema list: cannot reach a schema registry at http://127.0.0.1:"
    )
    assert len(result.err.splitlines()) == 1


def _serve_standalone(bootstrap: str, tmp_path: Path, *client: str) -> None:
    port = closed_port()
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen(
        [
            shoal_script(),
            "registry",
            "--bootstrap",
            bootstrap,
            *client,
            "--listen",
            f"127.0.0.1:{port}",
            "--topic",
            "_cli_schemas",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/subjects", timeout=2).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "registry.log").read_text()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/subjects/s/versions",
            json={"schema": json.dumps(V1)},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"http://127.0.0.1:{port}/subjects", timeout=5).json() == ["s"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    # A clean stop on SIGTERM: uvicorn shuts down, then re-raises the signal (not -9: killed).
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "registry.log").read_text()


def test_registry_standalone_serves_against_a_broker(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    _serve_standalone(broker.bootstrap_servers, tmp_path)


def test_registry_standalone_logs_in_to_a_sasl_broker(
    sasl_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path
) -> None:
    """Against a secured cluster: its Kafka clients take -X and --command-config settings."""
    broker = sasl_broker_factory(mechanisms=("SCRAM-SHA-512",))
    add_user(broker, "registry", "registry-secret", ["SCRAM-SHA-512"])
    config = tmp_path / "client.properties"
    config.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="registry" password="registry-secret";\n'
    )
    _serve_standalone(
        broker.bootstrap_servers,
        tmp_path,
        "--command-config",
        str(config),
        "-X",
        "sasl.mechanism=SCRAM-SHA-512",
    )


def test_registry_needs_bootstrap(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_BOOTSTRAP")
    assert cli("registry").code == 2
    assert cli("registry", "--bootstrap", "h:1", "--listen", "nope").code == 2
