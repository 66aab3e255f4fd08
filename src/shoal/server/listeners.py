"""Kafka's ``listeners``, ``advertised.listeners`` and ``listener.security.protocol.map``,
parsed and checked together: which sockets the broker binds, with which security protocol,
and the address each one tells its clients.

    listeners = "PLAINTEXT://127.0.0.1:9092,CLIENT://0.0.0.0:9093"
    advertised_listeners = "CLIENT://broker.example.com:9093"
    listener_security_protocol_map = "PLAINTEXT:PLAINTEXT,CLIENT:SASL_SSL"

A listener that ``advertised_listeners`` does not name is advertised at its bind address (which
must then not be a wildcard). Kafka instead leaves such a listener out of Metadata; with one
node and no inter-broker listener, the bind address is the only sensible answer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class ListenerError(ValueError):
    """A listener setting that does not parse or does not fit the others."""


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


DEFAULT_PROTOCOL_MAP: Final = ",".join(f"{p.value}:{p.value}" for p in SecurityProtocol)
"""listener.security.protocol.map's default: each protocol is a listener name of its own."""
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names them, binds nothing
_NAME: Final = re.compile(r"^[A-Za-z0-9_]+$")
_LISTENER: Final = re.compile(r"^([^:/]*)://(\[[^\]]*\]|[^:\[\]]*):(\d+)$")
_EXAMPLE: Final = "e.g. PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093"


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    """Upper case, as Kafka normalises listener names."""
    security_protocol: SecurityProtocol
    host: str
    """The address bound, without brackets."""
    port: int
    """0: any free port (the bound one is then advertised)."""
    advertised: tuple[str, int] | None
    """The address clients are told; None: the bind address."""

    @property
    def loopback(self) -> bool:
        """Only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: whatever it resolves to, assume others can reach it

    def advertised_address(self, bound_port: int | None = None) -> tuple[str, int]:
        if self.advertised is not None:
            return self.advertised
        return self.host, self.port if bound_port is None else bound_port


def parse_protocol_map(text: str) -> dict[str, SecurityProtocol]:
    """``NAME:PROTOCOL,...``."""
    result: dict[str, SecurityProtocol] = {}
    for entry in _entries(text):
        name, sep, protocol = entry.partition(":")
        name = name.strip().upper()
        if not sep or not _NAME.match(name):
            raise ListenerError(
                f"listener_security_protocol_map entry {entry!r} must look like NAME:PROTOCOL, "
                "e.g. CLIENT:SASL_SSL"
            )
        if name in result:
            raise ListenerError(f"listener_security_protocol_map names {name} twice")
        try:
            result[name] = SecurityProtocol(protocol.strip().upper())
        except ValueError:
            choices = ", ".join(p.value for p in SecurityProtocol)
            raise ListenerError(
                f"listener_security_protocol_map: {protocol.strip()!r} (for {name}) is not a "
                f"security protocol; use one of {choices}"
            ) from None
    return result


def parse_listeners(
    listeners: str,
    advertised: str,
    protocol_map: Mapping[str, SecurityProtocol],
    check_address: Callable[[str], tuple[str, int]],
) -> list[Listener]:
    """``check_address`` parses an advertised ``HOST:PORT`` (ValueError when it is not one a
    client can connect to)."""
    bound = [_parse_listener(entry, "listeners") for entry in _entries(listeners)]
    if not bound:
        raise ListenerError(f"listeners is empty: name at least one listener, {_EXAMPLE}")
    names = [name for name, _, _ in bound]
    for name in names:
        if names.count(name) > 1:
            raise ListenerError(f"listeners names {name} twice; each listener needs its own name")
        if name not in protocol_map:
            raise ListenerError(
                f"listener {name} has no security protocol: add {name}:<PROTOCOL> (PLAINTEXT, "
                "SSL, SASL_PLAINTEXT or SASL_SSL) to listener_security_protocol_map"
            )
    ports = [port for _, _, port in bound if port != 0]
    for port in ports:
        if ports.count(port) > 1:
            raise ListenerError(f"listeners use port {port} twice; each needs a different port")
    told = parse_advertised_listeners(advertised, check_address)
    for name in told:
        if name not in names:
            raise ListenerError(
                f"advertised_listeners names {name}, which is not in listeners ({', '.join(names)})"
            )
    result = []
    for name, host, port in bound:
        if host in WILDCARD_HOSTS and name not in told:
            raise ListenerError(
                f"listener {name} binds every interface ({host}), but clients must be told an "
                f"address they can reach: advertise one in advertised_listeners "
                f"({name}://HOST:PORT, e.g. this machine's name or IP, or 127.0.0.1 if only "
                "clients on this machine connect)"
            )
        result.append(Listener(name, protocol_map[name], host, port, told.get(name)))
    return result


def parse_advertised_listeners(
    text: str, check_address: Callable[[str], tuple[str, int]]
) -> dict[str, tuple[str, int]]:
    result: dict[str, tuple[str, int]] = {}
    for entry in _entries(text):
        name, host, port = _parse_listener(entry, "advertised_listeners")
        if name in result:
            raise ListenerError(f"advertised_listeners names {name} twice")
        bracketed = f"[{host}]" if ":" in host else host
        try:
            result[name] = check_address(f"{bracketed}:{port}")
        except ValueError as exc:
            raise ListenerError(f"advertised_listeners {entry!r}: {exc}") from None
    return result


def _parse_listener(entry: str, setting: str) -> tuple[str, str, int]:
    match = _LISTENER.match(entry.strip())
    if match is None:
        raise ListenerError(
            f"{setting} entry {entry!r} must look like NAME://HOST:PORT, {_EXAMPLE}"
        )
    name, host, port_text = match.groups()
    name = name.upper()
    if not _NAME.match(name):
        raise ListenerError(
            f"{setting} entry {entry!r}: the listener name must be letters, digits or '_'"
        )
    host = host[1:-1] if host.startswith("[") else host
    if not host:
        raise ListenerError(
            f"{setting} entry {entry!r} has no host: give 0.0.0.0 to bind every interface or "
            "127.0.0.1 for this machine only"
        )
    port = int(port_text)
    if port > 65535:
        raise ListenerError(f"{setting} entry {entry!r}: port {port} is out of range 0-65535")
    return name, host, port


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]
