"""``--command-config FILE``: a Kafka tools client properties file, for librdkafka.

Teams already keep a ``client.properties`` for ``kafka-topics.sh --command-config``; the same
file works with shoal's commands. It is a Java properties file written for the Java client, so
the settings the two clients name differently are translated: the JAAS line's username and
password become ``sasl.username``/``sasl.password``, PEM trust and key stores become librdkafka's
``ssl.ca.location``/``ssl.certificate.location``/``ssl.key.location``, and Java-only settings
with no librdkafka meaning (store types) are dropped. Everything else passes unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final


class PropertiesError(ValueError):
    """A properties file that cannot be read or translated; the message says where and why."""


_JAAS_OPTION: Final = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_JAAS_MODULES: Final = {
    "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM",
    "org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule": "OAUTHBEARER",
}
_DROPPED: Final = frozenset({"ssl.truststore.type", "ssl.keystore.type"})
"""Java store types: librdkafka reads PEM files by their own settings."""


def read_properties(path: str) -> list[tuple[str, str]]:
    """The ``key=value`` (or ``key: value``) pairs of a Java properties file, in order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PropertiesError(f"cannot read it: {exc}") from None
    return parse_properties(text)


def parse_properties(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    logical = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = logical + raw.lstrip() if logical else raw.strip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if _continues(line):
            logical = line[:-1]
            continue
        logical = ""
        match = re.match(r"^((?:[^=:\s\\]|\\.)+)\s*[=:\s]\s*(.*)$", line)
        if match is None:
            raise PropertiesError(f"line {number}: expected KEY=VALUE, got {raw.strip()!r}")
        pairs.append((match.group(1).replace("\\", ""), match.group(2).rstrip()))
    return pairs


def _continues(line: str) -> bool:
    """A line ending in an odd number of backslashes continues on the next one."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def to_librdkafka(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The Java client's settings as librdkafka names them (see the module docstring)."""
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in _DROPPED:
            continue
        if key == "sasl.jaas.config":
            out.extend(_from_jaas(value))
        elif key == "ssl.truststore.location":
            out.append(("ssl.ca.location", value))
        elif key == "ssl.keystore.location":
            # A PEM key store holds the private key and its certificate chain in one file.
            out.extend([("ssl.certificate.location", value), ("ssl.key.location", value)])
        elif key in ("ssl.keystore.password", "ssl.key.password"):
            out.append(("ssl.key.password", value))
        elif key == "ssl.truststore.password":
            continue  # PEM trust stores have no password
        else:
            out.append((key, value))
    return out


def _from_jaas(line: str) -> list[tuple[str, str]]:
    module = line.strip().split(None, 1)[0] if line.strip() else ""
    if module not in _JAAS_MODULES:
        known = ", ".join(sorted(_JAAS_MODULES))
        raise PropertiesError(
            f"sasl.jaas.config: login module {module!r} is not supported; use {known}"
        )
    options = {name: value.replace('\\"', '"') for name, value in _JAAS_OPTION.findall(line)}
    if _JAAS_MODULES[module] == "OAUTHBEARER":
        return []  # librdkafka gets its token from sasl.oauthbearer.* settings instead
    missing = [name for name in ("username", "password") if name not in options]
    if missing:
        raise PropertiesError(f"sasl.jaas.config: {module} needs {' and '.join(missing)}")
    return [("sasl.username", options["username"]), ("sasl.password", options["password"])]
