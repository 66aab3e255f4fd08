"""Subscription regexes read as RE2/J reads them (what Kafka 4.4 resolves on the broker)."""

from __future__ import annotations

import pytest

from shoal.coordinator.topic_regex import RegexError, compile_topic_regex


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("orders-.*", ["orders-eu", "orders-"], ["orders", "x-orders-eu"]),
        ("[[:digit:]]+", ["123"], ["12a", ":"]),
        ("[^[:digit:]]+", ["abc"], ["a1"]),
        ("\\p{Lu}[a-z]+", ["Orders"], ["orders"]),
        ("\\pL+", ["abc"], ["a1"]),
        ("\\Qa.b\\E", ["a.b"], ["axb"]),
        ("(?<region>eu|us)-orders", ["eu-orders"], ["ap-orders"]),
        ("a{2,}?b", ["aab"], ["ab"]),
        ("[]a]+", ["]a"], ["b"]),
    ],
)
def test_patterns_match_whole_names_as_re2j(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    compiled = compile_topic_regex(pattern)
    assert [name for name in matches if compiled.fullmatch(name)] == matches
    assert [name for name in misses if compiled.fullmatch(name)] == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(", "missing closing )"),
        ("[a", "missing closing ]"),
        ("*a", "missing argument to repetition operator"),
        ("(?=a)b", "invalid or unsupported Perl syntax"),
        ("(?<!a)b", "invalid or unsupported Perl syntax"),
        ("(a)\\1", "invalid escape sequence"),
        ("a++", "invalid nested repetition operator"),
        ("a{2}*", "invalid nested repetition operator"),
        ("\\p{Greek}", "invalid character class range"),
        ("[[:nope:]]", "invalid character class range"),
    ],
)
def test_what_re2j_refuses_is_refused_with_its_reason(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_topic_regex(pattern)
    assert str(info.value) == reason
