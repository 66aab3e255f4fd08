"""PLAIN users from a file of salted hashes: the format, refusals, and a real client logging in
with a password only the file knows."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shoal.cli import main
from shoal.embedded import EmbeddedBroker
from shoal.security.plain_users import UsersFileError, hash_line, parse_users
from tests.support.sasl import add_user, auth_error, client_config


def test_hash_line_round_trips() -> None:
    users = parse_users(hash_line("carol", "carol-secret", 4096) + "\n# a comment\n\n")
    assert len(users) == 1
    assert users.check("carol", "carol-secret")
    assert not users.check("carol", "wrong")
    assert not users.check("nobody", "carol-secret")


@pytest.mark.parametrize(
    "line",
    [
        "carol:md5:4096:c2FsdA==:aGFzaA==",
        "carol:pbkdf2-sha512:100:c2FsdA==:aGFzaA==",
        "carol:pbkdf2-sha512:4096:!!!:aGFzaA==",
        "carol:pbkdf2-sha512:4096:c2FsdA==:aGFzaA==",  # not a SHA-512 digest
        ":pbkdf2-sha512:4096:c2FsdA==:aGFzaA==",
        "carol",
    ],
)
def test_bad_lines_are_refused_with_the_line_number(line: str) -> None:
    with pytest.raises(UsersFileError, match="line 2"):
        parse_users("# users\n" + line, "users.txt")


def test_a_user_listed_twice_is_refused() -> None:
    line = hash_line("carol", "x", 4096)
    with pytest.raises(UsersFileError, match="twice"):
        parse_users(f"{line}\n{line}\n")


@pytest.mark.integration
def test_plain_login_from_the_users_file(
    sasl_broker_factory: Callable[..., EmbeddedBroker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"carol-secret\n")))
    assert main(["user", "hash", "carol", "--iterations", "4096"]) == 0
    line = capsys.readouterr().out.strip()
    assert "carol-secret" not in line
    users_file = tmp_path / "users.txt"
    users_file.write_text(line + "\n")
    broker = sasl_broker_factory(sasl_plain_users_file=str(users_file))
    add_user(broker, "alice", "alice-secret")
    producer = Producer(client_config(broker, "PLAIN", "carol", "carol-secret"))
    producer.produce("plain-file", b"v")
    assert producer.flush(30) == 0
    # SCRAM users still log in with PLAIN; a wrong password for a file user is refused.
    producer = Producer(client_config(broker, "PLAIN", "alice", "alice-secret"))
    producer.produce("plain-file", b"v")
    assert producer.flush(30) == 0
    error = auth_error(client_config(broker, "PLAIN", "carol", "wrong"))
    assert "Invalid username or password" in error.str()
