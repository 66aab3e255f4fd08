"""A TCP proxy between the workload's clients and the broker that cuts connections mid-frame.

It runs on its own event loop thread in the test process. While ``cutting`` is on, each
direction of each connection gets a byte budget drawn at random; the chunk that exhausts it is
forwarded only up to the budget (so the far side is left holding part of a request or a
response), then both sockets are reset. Kafka frames are a few bytes to a few KiB here, so
nearly every cut lands inside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from concurrent.futures import Future
from typing import Any, Final

CUT_BUDGET_BYTES: Final = (1, 32 * 1024)
"""Bytes a direction forwards before it is cut, drawn uniformly: from inside the first frame
(a request's header) to a few dozen produce batches."""
READ_CHUNK_BYTES: Final = 64 * 1024
CALL_TIMEOUT_S: Final = 30.0


class CuttingProxy:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.upstream_port = 0
        """The broker's port: set once it is known (the broker advertises the proxy's)."""
        self.cutting = False
        self.cuts = 0
        """Connections cut so far."""
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cutting-proxy")
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def open_connections(self) -> int:
        """Client connections the proxy is still forwarding (two sockets each)."""
        return len(self._open) // 2

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(CALL_TIMEOUT_S)

    def start(self) -> CuttingProxy:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # the broker is away: the client sees its connection close
            client_w.transport.abort()
            return
        self._open.update((client_w, broker_w))
        cut = asyncio.Event()
        budgets = [self._rng.randint(*CUT_BUDGET_BYTES) for _ in range(2)]
        try:
            await asyncio.gather(
                self._pipe(client_r, broker_w, budgets[0], cut),
                self._pipe(broker_r, client_w, budgets[1], cut),
            )
        finally:
            for writer in (client_w, broker_w):
                self._open.discard(writer)
                writer.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        budget: int,
        cut: asyncio.Event,
    ) -> None:
        """Forward until either side closes, or (while cutting) the budget runs out: then the
        budget's prefix of the chunk goes through and the connection is reset both ways."""
        with contextlib.suppress(ConnectionError, OSError):
            while not cut.is_set():
                chunk = await reader.read(READ_CHUNK_BYTES)
                if not chunk or cut.is_set():
                    break
                if self.cutting:
                    if len(chunk) >= budget:
                        writer.write(chunk[:budget])
                        with contextlib.suppress(ConnectionError, OSError):
                            await writer.drain()
                        if not cut.is_set():
                            cut.set()
                            self.cuts += 1
                        break
                    budget -= len(chunk)
                writer.write(chunk)
                await writer.drain()
        cut.set()  # one side is done: so is the other (a half-open proxy would leak)
        writer.transport.abort()
