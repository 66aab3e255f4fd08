"""Subscription regexes as Kafka resolves them: RE2/J syntax, matched against whole names.

Kafka 4.4 compiles ``SubscribedTopicRegex`` with RE2/J; Python's ``re`` reads most patterns
the same, but not all. This translates the differences that matter for topic names (ASCII
letters, digits, ``.``, ``_``, ``-``) and refuses what RE2/J refuses, with its message:

- refused: lookaround ``(?=`` ``(?!`` ``(?<=`` ``(?<!`` ("invalid or unsupported Perl
  syntax"), backreferences ``\\1``-``\\9`` ("invalid escape sequence"), possessive or doubled
  repetition ``a++`` ``a*+`` ``a?*`` ("invalid nested repetition operator");
- translated: ``\\Q...\\E`` (a literal), ``(?<name>`` (a named group), POSIX classes such as
  ``[[:alpha:]]``, and the Unicode classes ``\\pL`` ``\\p{L}`` ``\\p{Lu}`` ``\\p{Ll}``
  ``\\p{N}`` ``\\p{Nd}`` (over topic names, their ASCII part).

Anything else goes to ``re`` as written, and a pattern ``re`` refuses is refused with its
message.
"""

from __future__ import annotations

import re
from typing import Final

POSIX_CLASSES: Final = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "ascii": "\\x00-\\x7f",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "word": "a-zA-Z0-9_",
    "xdigit": "0-9A-Fa-f",
}
UNICODE_CLASSES: Final = {
    "L": "a-zA-Z",
    "Lu": "A-Z",
    "Ll": "a-z",
    "N": "0-9",
    "Nd": "0-9",
}
_QUANTIFIERS: Final = "*+?"


class RegexError(ValueError):
    """A pattern RE2/J refuses; the message is RE2/J's (or ``re``'s)."""


def _unicode_class(pattern: str, i: int) -> tuple[str, int]:
    """``\\p`` or ``\\P`` at ``i``: the class body and the index after it."""
    negated = pattern[i + 1] == "P"
    j = i + 2
    if j < len(pattern) and pattern[j] == "{":
        end = pattern.find("}", j)
        if end < 0:
            raise RegexError("invalid character class range")
        name, j = pattern[j + 1 : end], end + 1
    elif j < len(pattern):
        name, j = pattern[j], j + 1
    else:
        raise RegexError("invalid character class range")
    body = UNICODE_CLASSES.get(name)
    if body is None:
        raise RegexError("invalid character class range")
    return ("^" if negated else "") + body, j


def translate(pattern: str) -> str:  # noqa: C901 - one scanner over the pattern's tokens
    """The ``re`` pattern that matches what RE2/J's would (see the module docstring)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    last_quantified = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            d = pattern[i + 1]
            if d == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
            elif d in "pP":
                body, i = _unicode_class(pattern, i)
                out.append(body if in_class else f"[{body}]")
            elif d.isdigit() and d != "0":
                raise RegexError("invalid escape sequence")
            else:
                out.append(pattern[i : i + 2])
                i += 2
            last_quantified = False
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end >= 0 else ""
                negated = name.startswith("^")
                posix = POSIX_CLASSES.get(name.lstrip("^"))
                if posix is None or negated:
                    raise RegexError("invalid character class range")
                out.append(posix)
                i = end + 2
                continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            # A ']' right after '[' or '[^' is a literal member.
            for prefix in ("^]", "]"):
                if pattern.startswith(prefix, i + 1):
                    out.append(prefix)
                    i += len(prefix)
                    break
            i += 1
            last_quantified = False
            continue
        if c == "(" and pattern.startswith("(?", i):
            if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                raise RegexError("invalid or unsupported Perl syntax")
            if pattern.startswith("(?<", i):
                out.append("(?P<")
                i += 3
                continue
        if c in _QUANTIFIERS or (c == "{" and re.match(r"\{\d+(,\d*)?\}", pattern[i:])):
            if last_quantified:
                raise RegexError("invalid nested repetition operator")
            end = i + 1 if c != "{" else pattern.index("}", i) + 1
            out.append(pattern[i:end])
            i = end
            # A lazy '?' after a quantifier is RE2's too; anything more is nested repetition.
            if i < n and pattern[i] == "?":
                out.append("?")
                i += 1
            last_quantified = True
            continue
        out.append(c)
        i += 1
        last_quantified = False
    return "".join(out)


RE2_MESSAGES: Final = (
    ("missing ), unterminated subpattern", "missing closing )"),
    # RE2/J's own words for a ')' that closes nothing (an internal error it reports as such).
    ("unbalanced parenthesis", "regexp/syntax: internal error"),
    ("unterminated character set", "missing closing ]"),
    ("nothing to repeat", "missing argument to repetition operator"),
    ("multiple repeat", "invalid nested repetition operator"),
    ("bad character range", "invalid character class range"),
)
"""``re``'s words for a refusal -> RE2/J's, for the refusals both make."""


def compile_topic_regex(pattern: str) -> re.Pattern[str]:
    """Raises :class:`RegexError` with the reason for a pattern Kafka would refuse."""
    try:
        return re.compile(translate(pattern))
    except re.error as exc:
        reason = str(exc.msg)
        for python, re2 in RE2_MESSAGES:
            if reason.startswith(python):
                reason = re2
                break
        raise RegexError(reason) from None
