"""A ``queue=True`` App in its own process that takes one record and holds it in its handler
until it is SIGKILLed (test_queue.py's crash test).

Usage: ``python queue_crash_child.py <broker url> <topic> <group>``. Prints ``ready`` once the
App has started, then ``holding <record> <delivery count>`` when its handler has a record.
"""

from __future__ import annotations

import asyncio
import sys

from shoal import App, Message


async def main(url: str, topic: str, group: str) -> None:
    app = App(url, name="doomed", lag_interval_s=0)

    @app.subscriber(topic, group=group, queue=True)
    async def work(job: str, msg: Message) -> None:
        print(f"holding {job} {msg.delivery_count}", flush=True)
        await asyncio.Event().wait()  # never returns: the record stays unsettled

    async with app:
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
