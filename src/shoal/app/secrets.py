"""Keeping secrets out of what the framework prints: broker URLs carry them.

A broker URL may hold a password in its user info (``amqp://user:secret@host``) and client
settings in its query (``kafka://host?sasl.password=secret``). Logs, error messages and
generated documents show the URL with those values replaced, never the values.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK: Final = "***"

_SECRET_KEY: Final = re.compile(r"pass(word)?|secret|token|credential|(^|[._-])key($|[._-])", re.I)
"""Setting names whose values are secrets: sasl.password, ssl.key.password,
sasl.oauthbearer.client.secret, ssl.key.pem, ssl_keyfile_password, token... The key *location*
(ssl.key.location) names a file, not a secret, but masking it too costs nothing."""


_TOKEN_AS_USER: Final = frozenset({"nats", "tls"})
"""Schemes whose user info without a password is a token (``nats://TOKEN@host``)."""


def is_secret_setting(name: str) -> bool:
    return _SECRET_KEY.search(name) is not None


def redact_url(url: str) -> str:
    """``url`` with its password and its secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it rather than a secret
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hosts}"
    elif at and parts.scheme in _TOKEN_AS_USER:
        netloc = f"{MASK}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, MASK if is_secret_setting(key) else value) for key, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
