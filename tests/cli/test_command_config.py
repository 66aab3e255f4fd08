"""``--command-config FILE``: the Kafka tools' client properties file, read for librdkafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.cli.client_properties import (
    PropertiesError,
    parse_properties,
    read_properties,
    to_librdkafka,
)
from tests.cli.support import Cli


def test_java_properties_syntax_is_read_as_java_reads_it() -> None:
    text = "\n".join(
        [
            "# a comment",
            "! another comment",
            "",
            "security.protocol=SASL_SSL",
            "sasl.mechanism : SCRAM-SHA-512",
            "client.id   orders-admin",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \\",
            '    required username="alice" password="p=ss w\\"rd";',
            "empty.value=",
        ]
    )
    assert parse_properties(text) == [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("client.id", "orders-admin"),
        (
            "sasl.jaas.config",
            'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" '
            'password="p=ss w\\"rd";',
        ),
        ("empty.value", ""),
    ]


def test_the_java_clients_security_settings_become_librdkafkas() -> None:
    java = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="alice" password="p=ss w\\"rd";',
        ),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", "/etc/kafka/ca.pem"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/etc/kafka/client.pem"),
        ("ssl.key.password", "kp"),
        ("acks", "all"),
    ]
    assert to_librdkafka(java) == [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", 'p=ss w"rd'),
        ("ssl.ca.location", "/etc/kafka/ca.pem"),
        ("ssl.certificate.location", "/etc/kafka/client.pem"),
        ("ssl.key.location", "/etc/kafka/client.pem"),
        ("ssl.key.password", "kp"),
        ("acks", "all"),
    ]


def test_an_unknown_login_module_or_a_missing_password_is_a_clear_error() -> None:
    with pytest.raises(PropertiesError, match=r"login module 'com\.example\.Krb' is not supported"):
        to_librdkafka([("sasl.jaas.config", 'com.example.Krb required username="a";')])
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    with pytest.raises(PropertiesError, match="needs password"):
        to_librdkafka([("sasl.jaas.config", f'{plain} required username="a";')])
    with pytest.raises(PropertiesError, match="line 1: expected KEY=VALUE"):
        parse_properties("=novalue")


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(PropertiesError, match="cannot read it"):
        read_properties(str(tmp_path / "nope.properties"))


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_command_uses_the_file_and_x_overrides_it(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("ssl.truststore.type=PEM\nclient.id=from-file\nsecurity.protocol=SSL\n")
    # The file asks for SSL, which the plaintext broker cannot speak; -X wins and it works.
    listed = cli(
        "topic", "list", "--command-config", str(config), "-X", "security.protocol=PLAINTEXT"
    )
    assert listed.code == 0, listed.err
    # Without the override the file's SSL is used, and the plaintext broker is not reached.
    over_ssl = cli("topic", "list", "--command-config", str(config), "--timeout", "2")
    assert over_ssl.code == 1
    broken = tmp_path / "broken.properties"
    broken.write_text("sasl.jaas.config=com.example.Nope required;\n")
    refused = cli("topic", "list", "--command-config", str(broken))
    assert refused.code == 1
    assert "login module 'com.example.Nope' is not supported" in refused.err
