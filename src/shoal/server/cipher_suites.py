"""Kafka's ``ssl.cipher.suites`` on an OpenSSL context.

Kafka (Java) names cipher suites by their IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
OpenSSL's cipher lists take its own names (ECDHE-RSA-AES128-GCM-SHA256), so the IANA names of
the TLS 1.2 suites worth offering are translated, and OpenSSL names pass as they are.

TLS 1.3's five suites are named the same in both, but CPython has no call to narrow them
(SSL_CTX_set_ciphersuites): they are all offered while TLS 1.3 is on. A list that names none
of them turns TLS 1.3 off, which is what such a list does in Java (no TLS 1.3 suite left).
"""

from __future__ import annotations

import re
import ssl
from typing import Final

TLS13_SUITES: Final = frozenset(
    {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    }
)
_KEY_EXCHANGES: Final = {
    "ECDHE_RSA": "ECDHE-RSA-",
    "ECDHE_ECDSA": "ECDHE-ECDSA-",
    "DHE_RSA": "DHE-RSA-",
    "RSA": "",
}
_IANA: Final = re.compile(
    r"^TLS_(ECDHE_RSA|ECDHE_ECDSA|DHE_RSA|RSA)_WITH_"
    r"(?:(AES_128|AES_256)_(GCM|CBC)_(SHA384|SHA256|SHA)|(CHACHA20_POLY1305)_SHA256)$"
)


class CipherSuiteError(ValueError):
    """A name OpenSSL does not know (or that it cannot offer)."""


def openssl_name(name: str) -> str:
    """OpenSSL's name of a TLS 1.2 suite given by its IANA or OpenSSL name."""
    match = _IANA.match(name)
    if match is None:
        return name
    exchange, aes, mode, mac, chacha = match.groups()
    prefix = _KEY_EXCHANGES[exchange]
    if chacha:
        return f"{prefix}CHACHA20-POLY1305"
    bits = aes.removeprefix("AES_")
    if mode == "GCM":
        return f"{prefix}AES{bits}-GCM-{mac}"
    return f"{prefix}AES{bits}-{mac}"


def apply_cipher_suites(context: ssl.SSLContext, suites: tuple[str, ...]) -> None:
    """Offer only ``suites`` on ``context`` (whose protocol versions are already set)."""
    if not suites:
        return
    tls12 = [s for s in suites if s not in TLS13_SUITES]
    for suite in tls12:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            probe.set_ciphers(openssl_name(suite))
        except ssl.SSLError:
            raise CipherSuiteError(
                f"ssl_cipher_suites: {suite!r} is not a cipher suite OpenSSL offers (give "
                "IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, or OpenSSL names)"
            ) from None
    tls13_named = len(tls12) < len(suites)
    if not tls13_named:
        if context.minimum_version is ssl.TLSVersion.TLSv1_3:
            raise CipherSuiteError(
                "ssl_cipher_suites names no TLS 1.3 suite, and TLS 1.3 is the only enabled "
                "protocol: no handshake could succeed"
            )
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if tls12:
        context.set_ciphers(":".join(openssl_name(s) for s in tls12))
    elif context.maximum_version is ssl.TLSVersion.TLSv1_3:
        context.minimum_version = ssl.TLSVersion.TLSv1_3  # no TLS 1.2 suite was named


__all__ = ["TLS13_SUITES", "CipherSuiteError", "apply_cipher_suites", "openssl_name"]
