"""``shoal user`` against a SASL_PLAINTEXT broker: create, list, passwd, delete; the password
from stdin or a file, never printed; the admin's own login from -X."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from shoal.cli import main
from shoal.embedded import EmbeddedBroker
from tests.cli.support import Result
from tests.support.sasl import add_user, auth_error, client_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def sasl_cli(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> tuple[EmbeddedBroker, Callable[..., Result]]:
    broker = sasl_broker_factory()
    add_user(broker, "admin", "admin-secret")
    # -X, which every client command takes (main's --command-config works the same way).
    security = [
        "-X", "security.protocol=SASL_PLAINTEXT",
        "-X", "sasl.mechanisms=SCRAM-SHA-512",
        "-X", "sasl.username=admin",
        "-X", "sasl.password=admin-secret",
    ]  # fmt: skip

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        args = [*argv, "-b", broker.bootstrap_servers, *security]
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return broker, run


def _can_log_in(broker: EmbeddedBroker, user: str, password: str, mechanism: str) -> bool:
    config = client_config(broker, mechanism, user, password)
    try:
        AdminClient(config).list_topics(timeout=10)
    except Exception:
        return False
    return True


def test_create_list_passwd_delete(
    sasl_cli: tuple[EmbeddedBroker, Callable[..., Result]], tmp_path: Path
) -> None:
    broker, cli = sasl_cli
    created = cli("user", "create", "alice", stdin=b"alice-secret\n")
    assert created.code == 0, created.err
    assert created.out == "Created user alice.\n"
    assert "alice-secret" not in created.out + created.err
    assert _can_log_in(broker, "alice", "alice-secret", "SCRAM-SHA-512")
    assert _can_log_in(broker, "alice", "alice-secret", "SCRAM-SHA-256")

    again = cli("user", "create", "alice", stdin=b"x\n")
    assert again.code == 1 and "already exists" in again.err

    listed = json.loads(cli("user", "list", "--format", "json").out)
    assert {"name": "alice", "mechanisms": {"SCRAM-SHA-256": 8192, "SCRAM-SHA-512": 8192}} in (
        listed
    )
    text = cli("user", "list").out
    assert "alice\tSCRAM-SHA-256 (iterations=8192), SCRAM-SHA-512 (iterations=8192)" in text

    password_file = tmp_path / "pw"
    password_file.write_text("new-secret\n")
    changed = cli("user", "passwd", "alice", "--password-file", str(password_file))
    assert changed.code == 0, changed.err
    assert _can_log_in(broker, "alice", "new-secret", "SCRAM-SHA-512")
    assert auth_error(client_config(broker, "SCRAM-SHA-512", "alice", "alice-secret"))

    deleted = cli("user", "delete", "alice")
    assert deleted.code == 0, deleted.err
    assert "alice" not in [
        u["name"] for u in json.loads(cli("user", "list", "--format", "json").out)
    ]
    assert cli("user", "delete", "alice").code == 1


def test_passwd_of_an_unknown_user_and_bad_iterations(
    sasl_cli: tuple[EmbeddedBroker, Callable[..., Result]],
) -> None:
    _broker, cli = sasl_cli
    unknown = cli("user", "passwd", "ghost", stdin=b"x\n")
    assert unknown.code == 1 and "does not exist" in unknown.err
    bad = cli("user", "create", "bob", "--iterations", "100", stdin=b"x\n")
    assert bad.code == 2


def test_one_mechanism_only(sasl_cli: tuple[EmbeddedBroker, Callable[..., Result]]) -> None:
    broker, cli = sasl_cli
    created = cli("user", "create", "carol", "-m", "SCRAM-SHA-256", stdin=b"carol-secret\n")
    assert created.code == 0, created.err
    assert _can_log_in(broker, "carol", "carol-secret", "SCRAM-SHA-256")
    assert auth_error(client_config(broker, "SCRAM-SHA-512", "carol", "carol-secret"))


def test_first_user_written_into_a_stopped_brokers_data_directory(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.sasl import start_sasl_broker

    data_dir = str(tmp_path / "data")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"root-secret\n")))
    assert main(["user", "create", "root", "--data-dir", data_dir]) == 0
    broker = start_sasl_broker(lambda **settings: EmbeddedBroker(data_dir, **settings).start())
    try:
        assert _can_log_in(broker, "root", "root-secret", "SCRAM-SHA-512")
        # While the broker runs, the directory is its own: refused.
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
        capsys.readouterr()
        assert main(["user", "create", "other", "--data-dir", data_dir]) == 1
        assert "stop the broker" in capsys.readouterr().err
    finally:
        broker.stop()
