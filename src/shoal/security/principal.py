"""The principal of a TLS client: its certificate's subject as Kafka writes it, then Kafka's
``ssl.principal.mapping.rules``.

Kafka names an SSL client ``User:<name>``, where ``<name>`` is the subject's distinguished
name in RFC 2253 form (``X500Principal.getName(RFC2253)``: most specific RDN first, only the
keywords CN, C, L, ST, O, OU, STREET, DC, UID, every other attribute as ``OID=#hex``), passed
through the mapping rules::

    RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT

Each rule is ``RULE:pattern/replacement/`` with an optional ``L`` or ``U`` (lower or upper
case the result), or ``DEFAULT`` (the name unchanged); the first rule whose pattern matches the
whole name decides, and a name no rule matches is refused (:class:`NoMatchingRule`).
Patterns are Java regular expressions; the common subset (groups, classes, lazy quantifiers,
anchors) means the same in Python's :mod:`re`, and named groups ``(?<n>...)`` are translated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

DEFAULT_RULES: Final = "DEFAULT"
"""ssl.principal.mapping.rules' default: the distinguished name as it is."""

# Kafka's own grammar (SslPrincipalMapper.RULE_PATTERN): group 1 DEFAULT, group 2 the pattern,
# group 4 the replacement, group 6 the case flag, group 7 anything else (an invalid rule, or
# the empty rule between two commas, which is ignored).
_RULE: Final = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_SPLITTER: Final = re.compile(r"\s*(" + _RULE + r")\s*(,\s*|$)")
_PARSER: Final = re.compile(_RULE)
_JAVA_NAMED_GROUP: Final = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")

# X500Principal's RFC 2253 keywords, by the attribute names Python's ssl module reports.
_KEYWORDS: Final = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
# Attributes Java writes as OID=#hex, with the DER tag of the string type they always have.
_HEX_ATTRIBUTES: Final = {
    "emailAddress": ("1.2.840.113549.1.9.1", 0x16),  # IA5String
    "serialNumber": ("2.5.4.5", 0x13),  # PrintableString
}
_RFC2253_SPECIAL: Final = frozenset(',=+<>#;\\"')

Subject = Sequence[Sequence[tuple[str, str]]]
"""A certificate subject as :meth:`ssl.SSLSocket.getpeercert` gives it: RDNs in certificate
order, each a sequence of (attribute name, value)."""


class PrincipalMappingError(ValueError):
    """``ssl.principal.mapping.rules`` does not parse; the message names the rule."""


class NoMatchingRule(LookupError):
    """No mapping rule applies to a distinguished name (Kafka refuses the client)."""


def rfc2253_name(subject: Subject) -> str:
    """The distinguished name as Java's ``X500Principal.getName(RFC2253)`` writes it."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(_attribute(name, value) for name, value in rdn))
    return ",".join(rdns)


def _attribute(name: str, value: str) -> str:
    keyword = _KEYWORDS.get(name)
    if keyword is not None:
        return f"{keyword}={_escape(value)}"
    hex_form = _HEX_ATTRIBUTES.get(name)
    if hex_form is not None:
        oid, tag = hex_form
        data = value.encode("utf-8")
        return f"{oid}=#{_der(tag, data).hex()}"
    # An attribute neither table knows: Python's name for it (Java would print its OID).
    return f"{name}={_escape(value)}"


def _der(tag: int, data: bytes) -> bytes:
    size = len(data)
    if size < 0x80:
        return bytes([tag, size]) + data
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + data


def _escape(value: str) -> str:
    r"""X500Principal's RFC 2253 escaping: a backslash before each of ``,=+<>#;"\`` wherever it
    is, and before every leading and trailing space; a NUL as ``\00``."""
    lead = len(value) - len(value.lstrip(" "))
    trail = len(value.rstrip(" "))
    out = []
    for index, char in enumerate(value):
        if char == "\0":
            out.append("\\00")
            continue
        if char in _RFC2253_SPECIAL or index < lead or index >= trail:
            out.append("\\")
        out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    expand: Callable[[re.Match[str]], str]
    """The replacement, Java's syntax compiled (checked against the pattern's groups)."""
    case: str  # "", "L" or "U"

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        # Java's String.replaceAll: every match, so a pattern that can match the empty string
        # also replaces it at the end, as Python's re.sub does.
        result = self.pattern.sub(self.expand, name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


def _java_replacement(replacement: str, pattern: re.Pattern[str]) -> Callable[[re.Match[str]], str]:
    """Java's replacement syntax: ``$n`` a group (a reference past the last group is literal,
    as Kafka escapes it), ``${name}`` a named group, ``\\x`` the character x."""
    groups = pattern.groups
    parts: list[str | int | tuple[str]] = []  # literal text, group number, (group name,)
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            parts.append(replacement[i + 1])
            i += 2
        elif char == "$" and replacement[i + 1 : i + 2] == "{":
            end = replacement.find("}", i)
            if end < 0:
                raise PrincipalMappingError(f"unclosed group name in replacement {replacement!r}")
            group_name = replacement[i + 2 : end]
            if group_name not in pattern.groupindex:
                raise PrincipalMappingError(
                    f"replacement {replacement!r} names group {group_name!r}, which the "
                    "pattern does not have"
                )
            parts.append((group_name,))
            i = end + 1
        elif char == "$" and replacement[i + 1 : i + 2].isdigit():
            j = i + 1
            number = int(replacement[j])
            j += 1
            # Java reads further digits while the number still names a group.
            while j < len(replacement) and replacement[j].isdigit():
                longer = number * 10 + int(replacement[j])
                if longer > groups:
                    break
                number, j = longer, j + 1
            if number > groups:
                parts.append(replacement[i:j])
            else:
                parts.append(number)
            i = j
        else:
            parts.append(char)
            i += 1

    def expand(match: re.Match[str]) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(match.group(part if isinstance(part, int) else part[0]) or "")
        return "".join(out)

    return expand


def _unchanged(match: re.Match[str]) -> str:
    return match.group(0)


class PrincipalMapper:
    """Kafka's ``ssl.principal.mapping.rules``, parsed once (bad rules fail here)."""

    def __init__(self, rules: str = DEFAULT_RULES) -> None:
        self._rules = tuple(_parse(rules))

    def name(self, distinguished_name: str) -> str:
        """The principal name (without ``User:``) of a client with this subject."""
        for rule in self._rules:
            result = rule.apply(distinguished_name)
            if result is not None:
                return result
        raise NoMatchingRule(f"no ssl.principal.mapping.rules rule applies to {distinguished_name}")


def _parse(rules: str) -> list[_Rule]:
    parsed = []
    for found in _SPLITTER.finditer(rules.strip()):
        text = found.group(1)
        match = _PARSER.match(text)
        if match is None or match.end() != len(text):
            raise PrincipalMappingError(
                f"invalid ssl.principal.mapping.rules rule {text!r}: expected DEFAULT or "
                "RULE:pattern/replacement/ with an optional L or U after the last slash"
            )
        if match.group(1) is not None:
            parsed.append(_Rule(None, _unchanged, ""))
        elif match.group(2) is not None:
            pattern_text = _JAVA_NAMED_GROUP.sub(r"(?P<\1>", match.group(2))
            try:
                pattern = re.compile(pattern_text)
            except re.error as exc:
                raise PrincipalMappingError(
                    f"invalid pattern in ssl.principal.mapping.rules rule {text!r}: {exc}"
                ) from exc
            try:
                expand = _java_replacement(match.group(4), pattern)
            except PrincipalMappingError as exc:
                raise PrincipalMappingError(
                    f"invalid ssl.principal.mapping.rules rule {text!r}: {exc}"
                ) from None
            parsed.append(_Rule(pattern, expand, match.group(6) or ""))
        # Otherwise an empty rule (two commas in a row): ignored, as Kafka ignores it.
    return parsed
