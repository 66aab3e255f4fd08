"""A broker in a child process, for tests that kill it (see ``BrokerProcess`` in broker.py).

Usage: ``python tests/support/broker_child.py '{"settings": {...}, "broker_config": {...}}'``:
Settings fields, then BrokerSettings fields to replace before the broker is built; an optional
``"plant"`` names a bug of tests/reliability/planted.py to plant first. Prints one JSON line
``{"kafka_port": ..., "http_port": ...}`` once the broker is ready, then runs until SIGTERM
(clean shutdown) or SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from shoal.server.app import BrokerApp
from shoal.server.settings import Settings


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


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = json.loads(sys.argv[1])
    if config.get("plant"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
        from tests.reliability.planted import plant

        plant(config["plant"])
    asyncio.run(main(replace(Settings(), **config["settings"]), config["broker_config"]))
