"""listeners, advertised_listeners, listener_security_protocol_map, allow_insecure and the ssl_*
settings: what they give the broker, and the clear error each mistake gets before anything
starts (from the config file, SHOAL_* variables and ``shoal broker`` flags alike)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.embedded import EmbeddedBroker
from shoal.server.listeners import SecurityProtocol
from shoal.server.settings import Settings, SettingsError, load_settings
from tests.server.test_node_identity import shoal_broker_command


def listeners(settings: Settings) -> list[tuple[str, str, str, int]]:
    return [
        (item.name, item.security_protocol.value, item.host, item.port)
        for item in settings.kafka_listeners()
    ]


def test_the_default_is_kafka_listen_as_one_plaintext_listener() -> None:
    assert listeners(Settings()) == [("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 9092)]
    assert listeners(Settings(kafka_listen="127.0.0.1:0")) == [
        ("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 0)
    ]
    config = Settings().broker_config()
    assert config.advertised_listeners == (("PLAINTEXT", "127.0.0.1", 9092),)


def test_several_listeners_each_advertised() -> None:
    settings = Settings(
        listeners="PLAINTEXT://127.0.0.1:9092,client://0.0.0.0:9093,SSL://[::1]:9094",
        advertised_listeners="CLIENT://broker.example.com:19093",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT,CLIENT:SSL,SSL:SSL",
        ssl_keystore_location="server.pem",
        ssl_truststore_location="ca.pem",
        ssl_client_auth="required",
    )
    assert listeners(settings) == [
        ("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 9092),
        ("CLIENT", "SSL", "0.0.0.0", 9093),
        ("SSL", "SSL", "::1", 9094),
    ]
    config = settings.broker_config()
    assert config.advertised_listeners == (
        ("PLAINTEXT", "127.0.0.1", 9092),
        ("CLIENT", "broker.example.com", 19093),
        ("SSL", "::1", 9094),
    )
    assert config.advertised_address("CLIENT") == ("broker.example.com", 19093)
    assert (config.advertised_host, config.advertised_port) == ("127.0.0.1", 9092)


def test_bound_ports_are_advertised_for_port_0() -> None:
    settings = Settings(
        listeners="PLAINTEXT://127.0.0.1:0,OTHER://127.0.0.1:0",
        listener_security_protocol_map="PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
    )
    config = settings.broker_config(bound_ports={"PLAINTEXT": 4001, "OTHER": 4002})
    assert config.advertised_listeners == (
        ("PLAINTEXT", "127.0.0.1", 4001),
        ("OTHER", "127.0.0.1", 4002),
    )


def test_advertised_listener_is_the_shorthand_for_one_listener() -> None:
    settings = Settings(
        listeners="PLAINTEXT://0.0.0.0:9092",
        advertised_listener="10.0.0.5:9092",
        allow_insecure=True,
    )
    assert settings.broker_config().advertised_listeners == (("PLAINTEXT", "10.0.0.5", 9092),)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"listeners": "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093"},
            "names PLAINTEXT twice",
        ),
        ({"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9092"}, "use port 9092 twice"),
        ({"listeners": "CLIENT://127.0.0.1:9092"}, "add CLIENT:<PROTOCOL>"),
        ({"listeners": "127.0.0.1:9092"}, "must look like NAME://HOST:PORT"),
        ({"listeners": "PLAINTEXT://:9092"}, "has no host"),
        ({"listeners": "PLAINTEXT://127.0.0.1:70000"}, "out of range"),
        ({"listeners": " , "}, "listeners is empty"),
        (
            {"listener_security_protocol_map": "PLAINTEXT:TLS"},
            "'TLS' (for PLAINTEXT) is not a security protocol",
        ),
        ({"listener_security_protocol_map": "PLAINTEXT"}, "must look like NAME:PROTOCOL"),
        ({"listener_security_protocol_map": "A:SSL,A:SSL"}, "names A twice"),
        ({"advertised_listeners": "SSL://broker:9093"}, "names SSL, which is not in listeners"),
        (
            {"advertised_listeners": "PLAINTEXT://0.0.0.0:9092"},
            "not an address a client can connect to",
        ),
        ({"advertised_listeners": "PLAINTEXT://b:1,PLAINTEXT://c:2"}, "names PLAINTEXT twice"),
        ({"listeners": "PLAINTEXT://0.0.0.0:9092"}, "binds every interface"),
        ({"listeners": "PLAINTEXT://127.0.0.1:1", "kafka_listen": "127.0.0.1:2"}, "not both"),
        ({"advertised_listener": "b:1", "advertised_listeners": "PLAINTEXT://b:1"}, "not both"),
        (
            {
                "listeners": "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:2",
                "advertised_listener": "b:1",
                "ssl_keystore_location": "k.pem",
            },
            "shorthand for a single listener",
        ),
        ({"listeners": "SSL://127.0.0.1:9093"}, "set ssl_keystore_location"),
        (
            {
                "listeners": "SSL://127.0.0.1:9093",
                "ssl_keystore_location": "k.pem",
                "ssl_client_auth": "required",
            },
            "set ssl_truststore_location",
        ),
        ({"ssl_client_auth": "always"}, "none, requested or required"),
        ({"ssl_enabled_protocols": "TLSv1.1,TLSv1.2"}, "older versions are broken"),
        ({"ssl_principal_mapping_rules": "RULE:x/y"}, "invalid ssl.principal.mapping.rules rule"),
        ({"ssl_principal_mapping_rules": "RULE:(/y/"}, "invalid pattern"),
        ({"ssl_handshake_timeout_ms": 0}, "must be positive"),
    ],
)
def test_bad_listener_settings_are_refused_clearly(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(**settings).broker_config()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "insecure"),
    [
        ({"listeners": "PLAINTEXT://127.0.0.1:9092"}, False),
        ({"listeners": "PLAINTEXT://localhost:9092"}, False),
        ({"listeners": "PLAINTEXT://[::1]:9092"}, False),
        ({"listeners": "PLAINTEXT://10.0.0.5:9092"}, True),
        ({"listeners": "PLAINTEXT://broker.example.com:9092"}, True),
        ({"kafka_listen": "0.0.0.0:9092", "advertised_listener": "10.0.0.5:9092"}, True),
        ({"listeners": "SSL://10.0.0.5:9093"}, True),
        ({"listeners": "SSL://10.0.0.5:9093", "ssl_client_auth": "requested"}, True),
        ({"listeners": "SSL://10.0.0.5:9093", "ssl_client_auth": "required"}, False),
        ({"listeners": "SASL_SSL://10.0.0.5:9094"}, False),
        ({"listeners": "SASL_PLAINTEXT://10.0.0.5:9095"}, False),
    ],
)
def test_an_unauthenticated_listener_beyond_this_machine_needs_allow_insecure(
    settings: dict[str, object], insecure: bool
) -> None:
    tls = {"ssl_keystore_location": "k.pem", "ssl_truststore_location": "ca.pem"}
    chosen = Settings(**{**tls, **settings})  # type: ignore[arg-type]
    if insecure:
        with pytest.raises(SettingsError, match="--allow-insecure") as refused:
            chosen.broker_config()
        assert "authenticates nobody" in str(refused.value)
        Settings(**{**tls, **settings}, allow_insecure=True).broker_config()  # type: ignore[arg-type]
    else:
        chosen.broker_config()


def test_listener_settings_from_file_environment_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "shoal.toml"
    toml.write_text(
        'listeners = "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093"\n'
        'ssl_keystore_location = "/etc/shoal/server.pem"\n'
        'ssl_key_password = "hunter2"\n'
    )
    environ = {"SHOAL_SSL_CLIENT_AUTH": "requested", "SHOAL_SSL_TRUSTSTORE_LOCATION": "/ca.pem"}
    settings = load_settings(str(toml), environ=environ)
    assert [item.name for item in settings.kafka_listeners()] == ["PLAINTEXT", "SSL"]
    assert settings.ssl_client_auth == "requested"
    assert "hunter2" not in repr(settings), "the key password must never be shown"
    flags = {"allow_insecure": True, "listeners": "SSL://0.0.0.0:9093",
             "advertised_listeners": "SSL://b.example.com:9093"}  # fmt: skip
    settings = load_settings(str(toml), environ={"SHOAL_ALLOW_INSECURE": "false"}, overrides=flags)
    assert settings.allow_insecure
    assert settings.broker_config().advertised_address("SSL") == ("b.example.com", 9093)
    assert settings.kafka_listeners()[0].security_protocol is SecurityProtocol.SSL


def test_shoal_broker_flags_refuse_an_insecure_listener(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, stderr = shoal_broker_command(
        "--data-dir", str(data), "--listeners", "PLAINTEXT://0.0.0.0:9092",
        "--advertised-listeners", "PLAINTEXT://10.0.0.5:9092",
    )  # fmt: skip
    assert code == 2
    assert "authenticates nobody" in stderr and "--allow-insecure" in stderr
    assert not data.exists()
    code, stderr = shoal_broker_command(
        "--data-dir", str(data), "--listeners", "SSL://127.0.0.1:9093",
    )  # fmt: skip
    assert code == 2 and "ssl_keystore_location" in stderr


def test_an_allowed_insecure_listener_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shoal.server.app")
    with EmbeddedBroker(str(tmp_path), host="0.0.0.0", advertised_listener="127.0.0.1:1",
                        allow_insecure=True):  # fmt: skip
        pass
    assert "authenticates nobody (PLAINTEXT) and other machines can reach it" in caplog.text


LISTENER_TEXT = st.text(alphabet=st.sampled_from("PLAINTEXTSLCIN_:/[]0123456789.,: "), max_size=50)


@settings(max_examples=300, deadline=None)
@given(listeners=LISTENER_TEXT, advertised=LISTENER_TEXT, protocol_map=LISTENER_TEXT)
def test_any_listener_settings_parse_or_are_refused_with_a_settings_error(
    listeners: str, advertised: str, protocol_map: str
) -> None:
    chosen = Settings(
        listeners=listeners,
        advertised_listeners=advertised,
        listener_security_protocol_map=protocol_map or "PLAINTEXT:PLAINTEXT",
        allow_insecure=True,
        ssl_keystore_location="k.pem",
    )
    try:
        config = chosen.broker_config()
    except SettingsError:
        return
    names = [item.name for item in chosen.kafka_listeners()]
    assert [name for name, _, _ in config.advertised_listeners] == names
