"""``shoal run`` stopped by SIGTERM after its broker went away: the stop keeps to
``--shutdown-timeout`` whatever the broker does. The consumer's last commit and its leave of the
group cannot reach anyone; librdkafka would retry them for ever, so they are abandoned once the
budget is spent, the log says so and what it means (those offsets are redelivered), and the
process exits. Redis and NATS: App.stop returns within its timeout after the server was killed
(their asyncio clients were bounded by the stop's cancellation before this fix too; the test
keeps them so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import confluent_kafka
import pytest

from shoal import App
from shoal.embedded import EmbeddedBroker
from tests.peers.servers import start_nats, start_redis

pytestmark = [pytest.mark.integration]

WAIT_S = 60.0
"""Bound on every wait here; far above the shutdown timeout the app is given."""
SHUTDOWN_TIMEOUT_S = 2.0

APP = textwrap.dedent(
    """
    import os
    from shoal import App

    # A session far longer than any wait here: librdkafka would retry the leave for that long.
    app = App(f"kafka://{os.environ['BOOTSTRAP']}?session.timeout.ms=300000")

    @app.subscriber("orders", group="billing")
    async def bill(n: int) -> None:
        with open(os.environ["OUT"], "a") as f:
            f.write(f"{n}\\n")
    """
)


def test_sigterm_after_the_broker_stopped_exits_and_says_what_was_abandoned(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(str(tmp_path / "data")).start()
    try:
        bootstrap = broker.bootstrap_servers
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        producer.produce("orders", b"1")
        assert producer.flush(10) == 0
        del producer  # or it reconnects to the stopped broker, noisily, until the test ends
        (tmp_path / "billing_app.py").write_text(APP)
        out, log = tmp_path / "handled.txt", tmp_path / "app.log"
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "shoal.cli", "run", "billing_app:app"),
                    *("--app-dir", str(tmp_path), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S)),
                ],
                env={**os.environ, "BOOTSTRAP": bootstrap, "OUT": str(out)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + WAIT_S
            while not (out.exists() and out.read_text() == "1\n"):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the record was never handled"
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            raise
    finally:
        broker.stop()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("shoal run did not exit:\n" + log.read_text()[-3000:]) from None
    text = log.read_text()
    assert code == 0, text[-3000:]
    # What was given up, and what that means for the offsets.
    assert "group billing: closing the consumer abandoned" in text, text[-3000:]
    assert "offsets not committed yet are redelivered" in text, text[-3000:]


@pytest.mark.parametrize("peer", ["redis", "nats"])
def test_app_stop_keeps_to_its_timeout_after_the_server_went_away(
    tmp_path: Path, peer: str
) -> None:
    """The other transports' close paths: their clients are asyncio-native, so the stop budget
    (cancellation) bounds them; the server is killed first, so nothing can answer."""
    start = start_redis if peer == "redis" else start_nats
    server = start(tmp_path / peer)
    handled = asyncio.Event()

    async def scenario() -> None:
        app = App(server.url, name="billing")

        @app.subscriber("orders", group="billing")
        async def bill(n: int) -> None:
            handled.set()

        await app.start()
        try:
            await app.publish("orders", 1)
            async with asyncio.timeout(WAIT_S):
                await handled.wait()
        finally:
            server.kill()
            stopping = asyncio.ensure_future(app.stop(SHUTDOWN_TIMEOUT_S))
            # asyncio.wait, not wait_for: it reports a stop that hangs instead of cancelling it.
            done, _ = await asyncio.wait([stopping], timeout=WAIT_S)
            assert stopping in done, f"App.stop did not return after the {peer} server died"
            with contextlib.suppress(Exception):  # a transport may report the lost server
                stopping.result()

    try:
        asyncio.run(scenario())
    finally:
        server.kill()
