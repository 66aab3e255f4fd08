"""TLS for the Kafka listeners: the server's SSL context from PEM files, reloaded without a
restart, and the principal of a client that presents a certificate.

Reloading: asyncio binds one :class:`ssl.SSLContext` to a listening socket for good, so the
context given to it (the *front* context) has an SNI callback, which OpenSSL runs on every
ClientHello (with or without a server name), and which moves the new connection onto the
*current* context. A reload builds a whole new context from the files and, only if that worked,
makes it current: new connections get the new certificate, existing ones keep theirs, and a bad
file leaves the old context serving (with an error logged).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Final

from shoal.security.principal import NoMatchingRule, PrincipalMapper, rfc2253_name
from shoal.server.cipher_suites import CipherSuiteError, apply_cipher_suites
from shoal.server.settings import Settings, SettingsError

log = logging.getLogger(__name__)

ANONYMOUS: Final = "User:ANONYMOUS"
_VERIFY_MODES: Final = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_VERSIONS: Final = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(SettingsError):
    """A keystore or truststore that cannot be loaded; the message names the file and the
    setting."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    keystore_location: str
    """PEM: the private key and the certificate chain (Kafka's ssl.keystore.type=PEM)."""
    key_password: str
    truststore_location: str
    """PEM: CA certificates client certificates must chain to ('' for none)."""
    client_auth: str
    """none, requested or required (ssl.client.auth)."""
    enabled_protocols: tuple[str, ...]
    cipher_suites: tuple[str, ...] = ()
    """Kafka's ssl.cipher.suites (see :mod:`shoal.server.cipher_suites`); empty: OpenSSL's."""

    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.keystore_location, self.truststore_location) if f)


def build_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context from the files as they are now; TlsError naming the file otherwise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(_VERSIONS[p] for p in config.enabled_protocols)
    context.minimum_version = versions[0]
    context.maximum_version = versions[-1]
    try:
        apply_cipher_suites(context, config.cipher_suites)
    except CipherSuiteError as exc:
        raise TlsError(str(exc)) from None
    try:
        context.load_cert_chain(config.keystore_location, password=config.key_password or None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TlsError(
            f"cannot load ssl_keystore_location {config.keystore_location} (a PEM file with the "
            f"private key and the certificate chain): {exc}"
        ) from exc
    if config.truststore_location:
        try:
            context.load_verify_locations(cafile=config.truststore_location)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TlsError(
                f"cannot load ssl_truststore_location {config.truststore_location} (a PEM file "
                f"of CA certificates): {exc}"
            ) from exc
    context.verify_mode = _VERIFY_MODES[config.client_auth]
    return context


def tls_config(settings: Settings, listener_name: str | None = None) -> TlsConfig:
    """The TLS configuration of listener ``listener_name`` (its listener_ssl_* overrides
    applied), or with None the ssl_* settings themselves (the HTTP face's)."""
    if listener_name is None:
        keystore, password = settings.ssl_keystore_location, settings.ssl_key_password
        truststore, client_auth = settings.ssl_truststore_location, settings.ssl_client_auth
    else:
        own = settings.listener_ssl(listener_name)
        keystore, password = own.keystore_location, own.key_password
        truststore, client_auth = own.truststore_location, own.client_auth
    return TlsConfig(
        keystore_location=keystore,
        key_password=password,
        truststore_location=truststore,
        client_auth=client_auth,
        enabled_protocols=tuple(
            p.strip() for p in settings.ssl_enabled_protocols.split(",") if p.strip()
        ),
        cipher_suites=tuple(c.strip() for c in settings.ssl_cipher_suites.split(",") if c.strip()),
    )


class ReloadingContext:
    """The context a TLS listener is bound with (:attr:`front`), serving whichever context was
    last loaded successfully from the files."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._stamps = self._file_stamps()
        self.current = build_context(config)
        self.front = build_context(config)
        self.front.sni_callback = self._choose
        self.reloads = 0

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        # Runs inside the handshake: the connection is switched to the newest context.
        connection.context = self.current

    def _file_stamps(self) -> tuple[tuple[float, int] | None, ...]:
        stamps: list[tuple[float, int] | None] = []
        for path in self._config.files():
            try:
                stat = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((stat.st_mtime, stat.st_size))
        return tuple(stamps)

    def reload(self) -> bool:
        """Load the files again; on success new connections get them. A file that does not
        load is logged and the context serving until now stays."""
        self._stamps = self._file_stamps()
        try:
            context = build_context(self._config)
        except TlsError as exc:
            log.error("TLS certificates not reloaded, the previous ones stay in use: %s", exc)
            return False
        self.current = context
        self.reloads += 1
        log.info("TLS certificates reloaded from %s", ", ".join(self._config.files()))
        return True

    def reload_if_changed(self) -> bool:
        if self._file_stamps() == self._stamps:
            return False
        return self.reload()

    async def watch(self, interval_s: float) -> None:
        """Reload whenever a file's modification time or size changes (checked every
        ``interval_s``; os.stat is cheap enough for the event loop)."""
        while True:
            await asyncio.sleep(interval_s)
            self.reload_if_changed()


class CertificatePrincipal:
    """``User:<name>`` of a TLS client from its verified certificate's subject (Kafka's RFC 2253
    form through ssl.principal.mapping.rules); ``User:ANONYMOUS`` without a certificate."""

    def __init__(self, rules: str) -> None:
        self._mapper = PrincipalMapper(rules)

    def of(self, writer: asyncio.StreamWriter) -> str:
        """Raises :class:`NoMatchingRule` when no rule maps the subject (Kafka refuses the
        client then)."""
        ssl_object = writer.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        subject = certificate.get("subject") if certificate else None
        if not subject:
            return ANONYMOUS
        return f"User:{self._mapper.name(rfc2253_name(subject))}"


__all__ = [
    "ANONYMOUS",
    "CertificatePrincipal",
    "NoMatchingRule",
    "ReloadingContext",
    "TlsConfig",
    "TlsError",
    "build_context",
    "tls_config",
]
