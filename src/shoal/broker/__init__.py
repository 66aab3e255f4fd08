"""The broker: one handler per Kafka API over storage and (later) the coordinator; no sockets."""
