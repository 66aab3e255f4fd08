"""The ``shoal`` script as a real process: entry point, pipes, signals, the broker command."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shoal.embedded import EmbeddedBroker
from tests.cli.support import SUBPROCESS_TIMEOUT_S, closed_port, run_shoal, shoal_script

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_stdin_to_stdout_through_the_script(broker: EmbeddedBroker) -> None:
    bs = broker.bootstrap_servers
    produced = run_shoal("produce", "t", "-b", bs, "-p", "0", "-K", "\t", stdin=b"a\t1\nb\t2\n")
    assert produced.returncode == 0, produced.stderr
    consumed = run_shoal("consume", "t", "-b", bs, "-e", "-f", r"%k=%s;")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == b"a=1;b=2;"
    assert consumed.stderr == b"Processed a total of 2 messages\n"


def test_bad_flag_exit_code_and_no_traceback() -> None:
    result = run_shoal("consume", "t", "-o", "sometime")
    assert result.returncode == 2
    assert result.stderr.startswith(b"usage: shoal consume")
    assert b"Traceback" not in result.stderr


def test_environment_default_bootstrap() -> None:
    address = f"127.0.0.1:{closed_port()}"
    env = {**os.environ, "SHOAL_BOOTSTRAP": address}
    result = run_shoal("topic", "describe", "t", "--timeout", "1", env=env)
    assert result.returncode == 1
    assert f"cannot reach a broker at {address}".encode() in result.stderr


def test_closed_pipe_is_not_an_error(broker: EmbeddedBroker) -> None:
    bs = broker.bootstrap_servers
    lines = b"".join(b"line %d %s\n" % (i, b"x" * 200) for i in range(5_000))
    assert run_shoal("produce", "t", "-b", bs, "-p", "0", "-q", stdin=lines).returncode == 0
    # `shoal consume t | head -1`: the reader leaves after one line.
    with subprocess.Popen(
        [shoal_script(), "consume", "t", "-b", bs, "-e"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as consumer:
        assert consumer.stdout is not None and consumer.stderr is not None
        first = consumer.stdout.readline()
        consumer.stdout.close()
        stderr = consumer.stderr.read()
        code = consumer.wait(timeout=SUBPROCESS_TIMEOUT_S)
    assert first.startswith(b"line 0 ")
    assert code == 0, stderr
    assert b"Traceback" not in stderr
    assert b"BrokenPipe" not in stderr


def test_sigterm_stops_a_tailing_consumer_cleanly(broker: EmbeddedBroker) -> None:
    bs = broker.bootstrap_servers
    assert run_shoal("produce", "t", "-b", bs, "-q", stdin=b"one\ntwo\n").returncode == 0
    with subprocess.Popen(
        [shoal_script(), "consume", "t", "-b", bs],  # no -e: it would tail for ever
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as consumer:
        assert consumer.stdout is not None
        got = [consumer.stdout.readline(), consumer.stdout.readline()]
        consumer.send_signal(signal.SIGTERM)
        _, err = consumer.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert sorted(got) == [b"one\n", b"two\n"]
    assert consumer.returncode == 0, err
    assert err == b"Processed a total of 2 messages\n"


@pytest.mark.slow
def test_consumer_group_commits_what_it_read(broker: EmbeddedBroker) -> None:
    """Needs the group APIs (JoinGroup, SyncGroup, OffsetCommit, OffsetFetch) in the broker.
    Run as a process so that a broker without them fails the test by time-out, not a hang."""
    bs = broker.bootstrap_servers
    assert run_shoal("produce", "t", "-b", bs, "-q", stdin=b"a\nb\n").returncode == 0
    group = ("-g", "g1", "-e", "-q", "-b", bs, "--timeout", "5")
    try:
        first = run_shoal("consume", "t", *group, timeout=30)
        assert first.returncode == 0, first.stderr
        assert sorted(first.stdout.splitlines()) == [b"a", b"b"]
        assert run_shoal("produce", "t", "-b", bs, "-q", stdin=b"c\n").returncode == 0
        second = run_shoal("consume", "t", *group, timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the group consumer got no partitions within 30 s: {exc.stderr!r}")
    assert second.stdout.splitlines() == [b"c"], "committed offsets should skip what was read"


def test_broker_command_serves_clients_and_stops_on_sigterm(tmp_path: Path) -> None:
    kafka = f"127.0.0.1:{closed_port()}"
    broker = subprocess.Popen(
        [
            shoal_script(), "broker", "--data-dir", str(tmp_path / "data"),
            "--kafka-listen", kafka, "--http-listen", f"127.0.0.1:{closed_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while True:
            produced = run_shoal("produce", "t", "-b", kafka, "-q", "--timeout", "2", stdin=b"hi\n")
            if produced.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert produced.returncode == 0, produced.stderr
        consumed = run_shoal("consume", "t", "-b", kafka, "-e", "-q")
        assert consumed.stdout == b"hi\n"
    finally:
        broker.send_signal(signal.SIGTERM)
        output, _ = broker.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert broker.returncode == 0, output
    assert b"shoal broker ready" in output


def test_broker_command_rejects_a_bad_listen_address(tmp_path: Path) -> None:
    result = run_shoal("broker", "--data-dir", str(tmp_path), "--kafka-listen", "nowhere")
    assert result.returncode == 2
    assert b"shoal broker: listen address 'nowhere' must look like HOST:PORT" in result.stderr


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        ("topics.json", b"{not json", b"topics.json cannot be used (not valid JSON"),
        ("client-quotas.json", b'{"version": 7}', b"written by a newer shoal"),
        ("broker-configs.json", b"[]", b"a JSON list, not an object"),
    ],
)
def test_broker_command_names_a_damaged_state_file_and_what_to_do(
    tmp_path: Path, file_name: str, content: bytes, expected: bytes
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / file_name).write_bytes(content)
    result = run_shoal(
        "broker", "--data-dir", str(data),
        "--kafka-listen", f"127.0.0.1:{closed_port()}",
        "--http-listen", f"127.0.0.1:{closed_port()}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert b"shoal broker: cannot start:" in result.stderr
    assert expected in result.stderr
    assert b"Traceback" not in result.stderr
    assert (data / file_name).read_bytes() == content  # left for the operator to restore


def test_broker_command_names_a_taken_http_address(tmp_path: Path) -> None:
    """issue 21 (docs slice): uvicorn exits the process on a bind error; the broker turns that
    into its one-line start error instead of a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_shoal(
            "broker", "--data-dir", str(tmp_path / "data"),
            "--kafka-listen", f"127.0.0.1:{closed_port()}",
            "--http-listen", http,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"shoal broker: cannot start: cannot serve HTTP on {http}".encode() in result.stderr
    assert b"Traceback" not in result.stderr
