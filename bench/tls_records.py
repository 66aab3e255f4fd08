"""Why TLS produce costs shoal what it does: the TLS records a client sends, and what each costs.

A TLS listener decrypts every TLS record a client sends with one ``SSLObject.read`` call
(OpenSSL's ``SSL_read_ex``, one record per call), whatever the record's size. So the broker's
TLS cost per MB of produce is (TLS records per MB) x (CPU per record), and the first factor is
the client's choice: librdkafka calls ``SSL_write`` once per segment of its request buffer, and
a record value it pushes by reference (rather than copying it into the current segment) becomes
a TLS record of its own, with a second one of a few bytes for the next record's header.

This measures both factors on this machine, in the same run:

1. records: a counting proxy sits between the producer and the broker's SASL_SSL listener (the
   listener's advertised address is the proxy's, so every connection goes through it) and reads
   the 5-byte header of each TLS record (RFC 8446 section 5.1) in both directions. The proxy is
   Python and slows the run down, so it says nothing about throughput; only the record sizes
   count, and librdkafka's segmenting also depends on how full its queue is (``tls_cpu.py``'s
   runs, without the proxy, may see somewhat more or fewer records per MB).
2. cost: the same sequence of record sizes is encrypted again with this machine's OpenSSL over
   memory BIOs (TLS 1.3, the broker's certificate) and read back one record per call, as the
   event loop's TLS layer does, timing only the reads on the thread's CPU clock; and read once
   more on a second thread, while the main thread waits and while it runs Python, to show what
   moving the decryption to a thread of the broker's process would do.

Their product is the CPU the broker spends decrypting a MB of produce, which
``bench/tls_cpu.py`` measures as the broker's extra CPU per MB over TLS against plaintext.

    python bench/tls_records.py                        # shoal, 100 B and 1 KiB records
    python bench/tls_records.py --kafka --sizes 1024   # Apache Kafka's SASL_SSL listener too
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench.peers and tests.peers import from root

from bench.peers.kafka_protocol import KafkaProtocolSystem  # noqa: E402
from bench.peers.secured import (  # noqa: E402
    Certificates,
    SaslSslKafka,
    create_user,
    shoal_settings,
)
from bench.peers.systems import shoal_process  # noqa: E402
from tests.peers.kafka_peer import free_port  # noqa: E402

MB: Final = 1_000_000
RECORD_HEADER_BYTES: Final = 5
"""A TLS record's header: content type (1), legacy version (2), length (2)."""
APPLICATION_DATA: Final = 23
"""Under TLS 1.3 every encrypted record carries this outer content type."""
TLS13_AEAD_OVERHEAD_BYTES: Final = 17
"""The inner content type byte and the 16-byte AES-GCM tag of a TLS 1.3 record."""
PROXY_READ_BYTES: Final = 256 * 1024


@dataclass
class Direction:
    """The TLS records seen in one direction of the proxied connections."""

    lengths: list[int] = field(default_factory=list)
    """The length field of each application-data record, in order."""
    _pending: bytearray = field(default_factory=bytearray)
    """Bytes of a record whose end has not passed yet."""

    def feed(self, data: bytes) -> None:
        """Scan the next bytes of the stream: each record whose header and body are both in
        is counted (its length, when it is application data), the rest kept for later."""
        pending = self._pending
        pending += data
        start = 0
        while len(pending) - start >= RECORD_HEADER_BYTES:
            length = int.from_bytes(pending[start + 3 : start + 5], "big")
            if len(pending) - start < RECORD_HEADER_BYTES + length:
                break
            if pending[start] == APPLICATION_DATA:
                self.lengths.append(length)
            start += RECORD_HEADER_BYTES + length
        del pending[:start]


class Traffic:
    """One direction of every proxied connection: each connection's stream is scanned on its
    own (librdkafka keeps a bootstrap connection beside the one the data goes over)."""

    def __init__(self) -> None:
        self._connections: list[Direction] = []

    def connection(self) -> Direction:
        direction = Direction()
        self._connections.append(direction)
        return direction

    def clear(self) -> None:
        """Forget what was counted; connections still open count on into directions no
        longer listed, which is what a new phase wants."""
        self._connections = []

    @property
    def lengths(self) -> list[int]:
        return [n for direction in self._connections for n in direction.lengths]


def histogram(lengths: list[int]) -> dict[str, int]:
    return dict(sorted(collections.Counter(band(n) for n in lengths).items()))


def band(length: int) -> str:
    for limit, name in ((64, "< 64 B"), (2048, "64 B - 2 KiB"), (16384, "2 - 16 KiB")):
        if length < limit:
            return name
    return "16 KiB +"


class CountingProxy:
    """A TCP proxy on its own thread and loop that records the TLS record lengths passing
    through it; ``upstream`` is the broker's TLS port."""

    def __init__(self, upstream: int) -> None:
        self.port = free_port()
        self._upstream = upstream
        self.to_broker = Traffic()
        self.to_client = Traffic()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        self.to_broker.clear()
        self.to_client.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self._upstream)
        await asyncio.gather(
            self._pump(client_r, broker_w, self.to_broker.connection()),
            self._pump(broker_r, client_w, self.to_client.connection()),
        )

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Direction
    ) -> None:
        try:
            while data := await reader.read(PROXY_READ_BYTES):
                writer.write(data)
                seen.feed(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def memory_bio_pair(
    certs: Certificates,
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.SSLObject, ssl.MemoryBIO]:
    """A client and a server ``SSLObject`` with the handshake done (TLS 1.3, the broker's
    certificate): (client, client's outgoing BIO, server, server's incoming BIO)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certs.keystore)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(certs.ca_file)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    if server.version() != "TLSv1.3":
        raise RuntimeError(f"handshake did not reach TLS 1.3: {server.version()}")
    return client, c_out, server, s_in


def read_cost_us(certs: Certificates, lengths: list[int], rounds: int) -> list[float]:
    """CPU µs the server side spends per record reading ``lengths`` (TLS record lengths)
    again, one ``SSLObject.read`` per record into a reused buffer; one figure per round."""
    client, wire, server, incoming = memory_bio_pair(certs)
    buffer = memoryview(bytearray(256 * 1024))
    payload = os.urandom(16384)
    per_round = []
    for _ in range(rounds):
        spent_ns = 0
        for start in range(0, len(lengths), 256):
            for length in lengths[start : start + 256]:
                client.write(payload[: max(1, length - TLS13_AEAD_OVERHEAD_BYTES)])
            incoming.write(wire.read())
            began = time.thread_time_ns()
            while incoming.pending:
                server.read(len(buffer), buffer)
            spent_ns += time.thread_time_ns() - began
        per_round.append(spent_ns / 1000 / len(lengths))
    return per_round


def read_wall_us_on_a_thread(certs: Certificates, lengths: list[int], busy: bool) -> float:
    """Wall-clock µs per record of reading ``lengths`` again on a second thread, while this
    thread waits (``busy`` False) or keeps running Python, as an event loop would (``busy``
    True): each ``SSLObject.read`` gives the GIL up for OpenSSL and must take it back."""
    client, wire, server, incoming = memory_bio_pair(certs)
    buffer = memoryview(bytearray(256 * 1024))
    payload = os.urandom(16384)
    chunks = []
    for start in range(0, len(lengths), 256):
        for length in lengths[start : start + 256]:
            client.write(payload[: max(1, length - TLS13_AEAD_OVERHEAD_BYTES)])
        chunks.append(wire.read())
    spent_s = 0.0

    def decrypt() -> None:
        nonlocal spent_s
        began = time.perf_counter()
        for chunk in chunks:
            incoming.write(chunk)
            while incoming.pending:
                server.read(len(buffer), buffer)
        spent_s = time.perf_counter() - began

    worker = threading.Thread(target=decrypt)
    worker.start()
    spins = 0
    while busy and worker.is_alive():
        spins += 1  # pure Python, holding the GIL between the interpreter's switch points
    worker.join()
    return spent_s * 1e6 / len(lengths)


@contextmanager
def shoal_behind_proxy(work: Path, certs: Certificates) -> Iterator[tuple[str, CountingProxy]]:
    plain_port, tls_port = free_port(), free_port()
    settings = shoal_settings(certs, plaintext=("PLAIN", plain_port), sasl_ssl=("SECURE", tls_port))
    with CountingProxy(tls_port) as proxy:
        settings["SHOAL_ADVERTISED_LISTENERS"] = (
            f"PLAIN://127.0.0.1:{plain_port},SECURE://127.0.0.1:{proxy.port}"
        )
        with shoal_process(work, [], settings):
            create_user(f"127.0.0.1:{plain_port}")
            yield f"127.0.0.1:{proxy.port}", proxy


@contextmanager
def kafka_behind_proxy(work: Path, certs: Certificates) -> Iterator[tuple[str, CountingProxy]]:
    peer = SaslSslKafka(work, certs)
    with CountingProxy(peer.sasl_port) as proxy:
        peer.overrides["advertised.listeners"] = (
            f"PLAINTEXT://127.0.0.1:{peer.port},SASL_SSL://127.0.0.1:{proxy.port}"
        )
        peer.start()
        try:
            create_user(peer.bootstrap_servers)
            yield f"127.0.0.1:{proxy.port}", proxy
        finally:
            peer.stop()


def report(
    name: str,
    size: int,
    records: int,
    produced: list[int],
    consumed: list[int],
    certs: Certificates,
    rounds: int,
) -> None:
    """``produced``: the lengths of the records the producer sent; ``consumed``: those the
    broker sent the consumer."""
    values_mb = records * size / MB
    directions = (("produce, client -> broker", produced), ("consume, broker -> client", consumed))
    for phase, lengths in directions:
        count = len(lengths)
        print(
            f"{name} {size} B {phase}: {count:,} TLS records, {count / values_mb:,.0f} per MB "
            f"of values, mean {statistics.fmean(lengths):,.0f} B; {histogram(lengths)}"
        )
    costs = read_cost_us(certs, produced, rounds)
    per_record = statistics.median(costs)
    per_mb_ms = per_record * len(produced) / values_mb / 1000
    alone = read_wall_us_on_a_thread(certs, produced, busy=False)
    beside = read_wall_us_on_a_thread(certs, produced, busy=True)
    print(
        f"{name} {size} B: on a second thread they take {alone:.2f} µs each (wall clock) while "
        f"the main thread waits, {beside:.2f} µs while it runs Python (the GIL taken back per "
        "record)"
    )
    print(
        f"{name} {size} B: decrypting those produce records again costs {per_record:.2f} µs "
        f"each (median of {rounds} rounds, {min(costs):.2f}-{max(costs):.2f}): "
        f"{per_mb_ms:.2f} ms of CPU per MB of values",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1024", help="record value sizes in bytes")
    parser.add_argument("--mb", type=float, default=30.0, help="MB of values produced per size")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the decryption timing")
    parser.add_argument("--kafka", action="store_true", help="Apache Kafka's listener as well")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"load before: {os.getloadavg()}; {ssl.OPENSSL_VERSION}", flush=True)
    brokers = [("shoal", shoal_behind_proxy)] + (
        [("kafka", kafka_behind_proxy)] if args.kafka else []
    )
    with tempfile.TemporaryDirectory(prefix="shoal-tls-records-") as tmp:
        certs = Certificates(Path(tmp) / "certs")
        for name, start in brokers:
            with start(Path(tmp) / name, certs) as (bootstrap, proxy):
                system = KafkaProtocolSystem(name, bootstrap, "", certs.client_config())
                for size in sizes:
                    topic = f"records-{size}"
                    system.prepare(topic)
                    records = int(args.mb * MB / size)
                    proxy.reset()
                    system.produce_count(topic, size, records)
                    produced = proxy.to_broker.lengths
                    proxy.reset()
                    system.consume(topic, size, records)
                    consumed = proxy.to_client.lengths
                    report(name, size, records, produced, consumed, certs, args.rounds)
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
