"""The broker process lifecycle: readiness, clean shutdown, settings."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal.server.app import BrokerApp
from shoal.server.settings import Settings, SettingsError, load_settings
from shoal.storage import LogManager

pytestmark = pytest.mark.integration


def test_readyz_is_503_while_logs_recover_and_200_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_open = LogManager.open

    def slow_open(*args: Any, **kwargs: Any) -> LogManager:
        release.wait(30)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(LogManager, "open", slow_open)

    async def scenario() -> None:
        app = BrokerApp(
            Settings(
                data_dir=str(tmp_path),
                kafka_listen="127.0.0.1:0",
                http_listen="127.0.0.1:0",
            )
        )
        starting = asyncio.ensure_future(app.start())
        for _ in range(3000):  # up to 30 s for the HTTP listener to come up
            if app._http is not None and app._http.started:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as http:
            assert (await http.get("/livez")).status_code == 200
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert response.json()["detail"] == "recovering logs"
            release.set()
            await starting
            assert (await http.get("/readyz")).status_code == 200
        await app.stop()

    asyncio.run(scenario())


def test_clean_stop_leaves_a_clean_start(tmp_path: Path) -> None:
    async def run_once() -> bool:
        app = BrokerApp(
            Settings(data_dir=str(tmp_path), kafka_listen="127.0.0.1:0", http_listen="127.0.0.1:0")
        )
        await app.start()
        assert app.logs is not None
        clean = app.logs.recovered_cleanly
        await app.stop()
        return clean

    assert asyncio.run(run_once()) is False  # a new directory has nothing to trust
    assert (tmp_path / ".clean-shutdown").exists()
    assert asyncio.run(run_once()) is True


def test_settings_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "shoal.toml"
    config.write_text('data_dir = "/from/file"\nnum_partitions = 3\nflush_policy = "none"\n')
    settings = load_settings(
        str(config),
        environ={"SHOAL_NUM_PARTITIONS": "5", "SHOAL_AUTO_CREATE_TOPICS": "false", "OTHER": "x"},
        overrides={"data_dir": "/from/flag", "kafka_listen": None},
    )
    assert settings.data_dir == "/from/flag"
    assert settings.num_partitions == 5
    assert settings.auto_create_topics is False
    assert settings.flush_policy == "none"
    assert settings.kafka_listen == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('datadir = "x"\n', "unknown setting 'datadir'"),
        ('num_partitions = "many"\n', "not a valid int"),
        ('auto_create_topics = "maybe"\n', "not a valid bool"),
        ("data_dir = \n", "cannot read config file"),
    ],
)
def test_bad_settings_say_what_is_wrong(tmp_path: Path, doc: str, message: str) -> None:
    config = tmp_path / "shoal.toml"
    config.write_text(doc)
    with pytest.raises(SettingsError, match=message):
        load_settings(str(config), environ={})


@pytest.mark.parametrize("listen", ["9092", "host:", "host:99999", ":abc"])
def test_bad_listen_addresses_are_refused(listen: str) -> None:
    with pytest.raises(SettingsError, match="HOST:PORT"):
        Settings(kafka_listen=listen).broker_config()


def test_bad_flush_policy_is_refused() -> None:
    with pytest.raises(SettingsError, match="sync, interval, none"):
        Settings(flush_policy="sometimes").broker_config()


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from shoal.server.logs import configure_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", "json")
        logging.getLogger("shoal.test").info("listening on %s", "127.0.0.1:9092")
        logging.getLogger("shoal.test").debug("not shown at info")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("shoal.test").exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.strip().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["message"] for e in entries] == ["listening on 127.0.0.1:9092", "failed"]
    assert entries[0]["level"] == "info" and entries[0]["logger"] == "shoal.test"
    assert entries[0]["time"].endswith("+00:00")
    assert "ValueError: boom" in entries[1]["exception"]


@pytest.mark.parametrize(("field", "value"), [("log_format", "xml"), ("log_level", "loud")])
def test_bad_log_settings_are_refused(field: str, value: str) -> None:
    from dataclasses import replace

    with pytest.raises(SettingsError, match=field):
        replace(Settings(), **{field: value}).broker_config()


def test_leader_epochs_begin_off_the_event_loop_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two fsyncs per partition (0.3 s for 1000 partitions): on the event loop they would
    # stall the HTTP face; they must still be saved before any client is served.
    real_begin = LogManager.begin_leader_epochs
    seen: list[tuple[bool, bool]] = []
    apps: list[BrokerApp] = []

    def recording_begin(self: LogManager) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        serving = any(s._server.is_serving() for s in apps[0].listeners.values() if s._server)
        seen.append((on_loop, serving))
        real_begin(self)

    monkeypatch.setattr(LogManager, "begin_leader_epochs", recording_begin)

    async def start_and_stop() -> None:
        app = BrokerApp(
            Settings(data_dir=str(tmp_path), kafka_listen="127.0.0.1:0", http_listen="127.0.0.1:0")
        )
        apps[:] = [app]
        await app.start()
        await app.stop()

    asyncio.run(start_and_stop())
    assert seen == [(False, False)]  # once, on a worker thread, before the listeners serve


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_run_until_stopped_off_the_main_thread_on_either_loop(
    tmp_path: Path, event_loop: str
) -> None:
    """Found in review: off the main thread uvloop refuses signal handlers with ValueError
    (asyncio with RuntimeError), which ended run_until_stopped on uvloop."""
    from shoal.server.event_loops import loop_factory

    app = BrokerApp(
        Settings(data_dir=str(tmp_path), kafka_listen="127.0.0.1:0", http_listen="127.0.0.1:0")
    )
    failures: list[BaseException] = []

    async def run_then_stop() -> None:
        asyncio.get_running_loop().call_later(1.0, app.request_stop)
        await app.run_until_stopped()

    def in_thread() -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
                runner.run(run_then_stop())
        except BaseException as exc:  # reported to the test's thread
            failures.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert failures == []
    assert (tmp_path / ".clean-shutdown").exists()
