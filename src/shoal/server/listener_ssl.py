"""Kafka's per-listener TLS overrides (``listener.name.<name>.ssl.*``), given in shoal as
``NAME:VALUE`` lists, the way listener_security_protocol_map names each listener:

    listener_ssl_keystore_location = "INTERNAL:/etc/shoal/in.pem,EXTERNAL:/etc/shoal/out.pem"
    listener_ssl_client_auth = "INTERNAL:required"

A listener named in none of them uses the ssl_* settings; one named in some uses its own value
for those and the ssl_* value for the rest, as Kafka falls back from the prefixed config to the
unprefixed one. A value runs from the first ':' after the name to the next ',' (so a value
cannot hold a comma).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

CLIENT_AUTH_VALUES: Final = ("none", "requested", "required")
_NAME: Final = re.compile(r"^[A-Za-z0-9_]+$")


class ListenerSslError(ValueError):
    """A per-listener TLS setting that does not parse."""


@dataclass(frozen=True, slots=True)
class ListenerSsl:
    """One listener's TLS files and client-auth rule, overrides applied."""

    keystore_location: str
    key_password: str
    truststore_location: str
    client_auth: str


def parse_listener_values(text: str, setting: str) -> dict[str, str]:
    """``NAME:VALUE,...`` by upper-cased listener name."""
    result: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, value = entry.partition(":")
        name = name.strip().upper()
        if not sep or not _NAME.match(name) or not value.strip():
            raise ListenerSslError(
                f"{setting} entry {entry.split(':')[0]!r}...: each entry must look like "
                "LISTENER_NAME:VALUE, e.g. EXTERNAL:/etc/shoal/external.pem"
            )
        if name in result:
            raise ListenerSslError(f"{setting} names {name} twice")
        result[name] = value.strip()
    return result


__all__ = ["CLIENT_AUTH_VALUES", "ListenerSsl", "ListenerSslError", "parse_listener_values"]
