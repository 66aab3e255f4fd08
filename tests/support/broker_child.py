"""A broker in a child process, for tests that kill it (see ``BrokerProcess`` in broker.py).

The config is a JSON object: ``"settings"`` (Settings fields), ``"broker_config"``
(BrokerSettings fields to replace before the broker is built), an optional ``"plant"`` naming a
bug of tests/reliability/planted.py to plant first, and an optional ``"max_open_files"``
(RLIMIT_NOFILE, set before the broker opens anything). The child prints one JSON line
``{"kafka_port": ..., "http_port": ...}`` once the broker is ready, then runs until SIGTERM
(clean shutdown) or SIGKILL.

Two ways in: forked from the fork server (zygote.py, which has imported this module and shoal
already; the usual way, about 0.15 s to a ready broker instead of 1.5-1.9 s), or executed,
``python -m tests.support.broker_child '<config>'`` from the repository
(``BrokerProcess(..., fork=False)``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import sys
from dataclasses import replace
from typing import Any

from shoal.server.app import BrokerApp
from shoal.server.settings import Settings
from tests.reliability.planted import plant


async def main(settings: Settings, broker_config: dict[str, Any]) -> None:
    app = BrokerApp(settings, adjust_broker_config=lambda config: replace(config, **broker_config))
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"kafka_port": app.kafka_port, "http_port": app.http_port}), flush=True)
    try:
        await stop.wait()
    finally:
        await app.stop()


def run(config: dict[str, Any]) -> None:
    """The child's whole life: stderr is its log, stdout carries the ready line."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.get("max_open_files"):
        limit = int(config["max_open_files"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    if config.get("plant"):
        plant(config["plant"])
    asyncio.run(main(replace(Settings(), **config["settings"]), config["broker_config"]))


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
