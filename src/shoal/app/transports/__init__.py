"""The transports: implementations of the framework's one I/O seam (:mod:`shoal.app.transport`).

``kafka`` (the Kafka protocol: a shoal broker, embedded or not, or a Kafka cluster), ``memory``
(in-process, for tests), and the work-queue systems ``amqp*`` (RabbitMQ), ``redis_*`` (Redis
Streams) and ``nats_jetstream``, which number their deliveries through ``ledger``. Nothing is
imported here: each implementation loads its client library when its URL is used.
"""
