"""Each peer server, driven by its real client: what is written survives a restart.

These also prove the session fixtures other packages import: the servers start on their own
ports and data directories, speak their protocol, and come back with their data after
``restart()``. The stores are the durable ones the transports and benches use: a Redis stream
with the AOF fsynced on every write, a durable quorum queue with publisher confirms, and a
JetStream stream in the file store.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import nats
import pytest
import redis
from nats.js.api import StorageType, StreamConfig

from tests.peers.servers import (
    NatsServer,
    RabbitServer,
    RedisServer,
    nats_server,  # noqa: F401 - session fixture
    rabbitmq_server,  # noqa: F401 - session fixture
    redis_server,  # noqa: F401 - session fixture
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RECORDS = [f"record-{i}".encode() for i in range(10)]


def test_redis_stream_survives_restart_and_kill(redis_server: RedisServer) -> None:  # noqa: F811
    stream = f"smoke-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_server.url)
    for record in RECORDS[:5]:
        client.xadd(stream, {"v": record})
    client.close()

    redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    assert [fields[b"v"] for _, fields in client.xrange(stream)] == RECORDS[:5]
    for record in RECORDS[5:]:
        client.xadd(stream, {"v": record})
    client.close()

    # appendfsync always: an acknowledged XADD is on disk, so even SIGKILL keeps it.
    redis_server.kill()
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    assert [fields[b"v"] for _, fields in client.xrange(stream)] == RECORDS
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"
    client.close()


async def publish_confirmed(url: str, queue_name: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        for record in RECORDS:
            # With confirms on, publish returns once the broker has taken the message.
            await channel.default_exchange.publish(
                aio_pika.Message(record, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )


async def drain(url: str, queue_name: str) -> list[bytes]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        bodies = []
        while (message := await queue.get(fail=False, timeout=10)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies


def test_rabbitmq_quorum_queue_survives_restart(rabbitmq_server: RabbitServer) -> None:  # noqa: F811
    queue_name = f"smoke-{uuid.uuid4().hex}"
    asyncio.run(publish_confirmed(rabbitmq_server.url, queue_name))
    rabbitmq_server.restart()
    assert asyncio.run(drain(rabbitmq_server.url, queue_name)) == RECORDS
    assert rabbitmq_server.url == f"amqp://guest:guest@127.0.0.1:{rabbitmq_server.port}/"


async def publish_to_stream(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[stream], storage=StorageType.FILE))
        for record in RECORDS:
            ack = await js.publish(stream, record)
            assert ack.stream == stream
    finally:
        await client.close()


async def read_stream(url: str, stream: str) -> list[bytes]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        return [
            (await js.get_msg(stream, seq)).data or b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await client.close()


def test_nats_jetstream_file_store_survives_restart(nats_server: NatsServer) -> None:  # noqa: F811
    stream = f"smoke_{uuid.uuid4().hex}"
    asyncio.run(publish_to_stream(nats_server.url, stream))
    nats_server.restart()
    assert asyncio.run(read_stream(nats_server.url, stream)) == RECORDS
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
