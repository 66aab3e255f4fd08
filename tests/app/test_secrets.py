"""Secrets in broker URLs never reach logs, errors or generated documents."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shoal.app import App
from shoal.app.observability.asyncapi import servers
from shoal.app.secrets import redact_url

SECRET = "s3cr3t-VALUE"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"kafka://h:9092?security.protocol=SASL_SSL&sasl.username=alice&sasl.password={SECRET}",
            "kafka://h:9092?security.protocol=SASL_SSL&sasl.username=alice&sasl.password=***",
        ),
        (f"kafka://h:9092?ssl.key.password={SECRET}", "kafka://h:9092?ssl.key.password=***"),
        (
            f"kafka://h:9092?sasl.oauthbearer.client.secret={SECRET}&acks=all",
            "kafka://h:9092?sasl.oauthbearer.client.secret=***&acks=all",
        ),
        (f"amqps://bob:{SECRET}@rabbit:5671/vh", "amqps://bob:***@rabbit:5671/vh"),
        (f"rediss://:{SECRET}@cache:6380/0", "rediss://:***@cache:6380/0"),
        (f"nats://{SECRET}@nats:4222", "nats://***@nats:4222"),
        ("amqp://guest@rabbit/", "amqp://guest@rabbit/"),
        ("kafka://h:9092?acks=all", "kafka://h:9092?acks=all"),
    ],
)
def test_a_url_is_shown_without_its_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_unknown_scheme_error_does_not_repeat_the_password() -> None:
    with pytest.raises(ValueError, match="unknown broker URL") as raised:
        App(f"kafkaa://h:9092?sasl.password={SECRET}")
    assert SECRET not in str(raised.value)


def test_asyncapi_servers_carry_no_credentials() -> None:
    document = servers(f"kafka://h:9092?sasl.password={SECRET}")
    assert SECRET not in repr(document)
    document = servers(f"amqp://bob:{SECRET}@rabbit:5672/")
    assert SECRET not in repr(document)


def test_the_running_log_line_shows_the_url_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App(f"memory://secrets-test?sasl.password={SECRET}")

    async def run_briefly() -> None:
        stop = asyncio.Event()
        stop.set()  # serve, log, and stop at once
        await app.serve(stop_event=stop)

    with caplog.at_level(logging.INFO):
        asyncio.run(run_briefly())
    assert "running on" in caplog.text
    assert SECRET not in caplog.text
