"""The registry on its own, against any Kafka cluster: ``shoal registry --bootstrap ...``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import uvicorn

from shoal.registry.api import build_registry_app
from shoal.registry.log import TOPIC, KafkaSchemaLog
from shoal.registry.service import RegistryService

log = logging.getLogger(__name__)


async def serve_registry(
    bootstrap_servers: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    topic: str = TOPIC,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Replay ``topic`` from ``bootstrap_servers``, then serve Confluent's REST API on
    ``host:port`` until cancelled (or SIGINT/SIGTERM, which uvicorn handles).
    ``client_config``: librdkafka settings of its Kafka clients (SASL, TLS)."""
    service = RegistryService()
    schema_log = KafkaSchemaLog(bootstrap_servers, topic=topic, client_config=client_config)
    await asyncio.to_thread(service.open, schema_log)
    log.info("schema registry ready on http://%s:%d (topic %s)", host, port, topic)
    server = uvicorn.Server(
        uvicorn.Config(build_registry_app(service), host=host, port=port, log_level="warning")
    )
    try:
        await server.serve()
    finally:
        await asyncio.to_thread(service.close)


def run_registry(
    bootstrap_servers: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    topic: str = TOPIC,
    client_config: Mapping[str, str] | None = None,
) -> None:
    """Blocking entry point for the CLI."""
    asyncio.run(
        serve_registry(
            bootstrap_servers, host=host, port=port, topic=topic, client_config=client_config
        )
    )
