"""Transports: the one I/O seam of the framework (:mod:`.base`) and its implementations.

``kafka`` (the Kafka protocol: a shoal broker, embedded or not, or a Kafka cluster), ``memory``
(in-process, for tests), and the work-queue systems ``amqp*`` (RabbitMQ), ``redis_*`` (Redis
Streams) and ``nats_jetstream``, which number their deliveries through ``ledger``. Only the seam
is imported here: each implementation loads its client library when its URL is used.
"""

from shoal.app.transports.base import (
    TopicPartition,
    Transport,
    TransportConsumer,
    TransportError,
)

__all__ = ["TopicPartition", "Transport", "TransportConsumer", "TransportError"]
