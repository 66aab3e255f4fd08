"""The per-listener TLS settings (Kafka's listener.name.<name>.ssl.*) as shoal's
listener_ssl_* lists: what each listener ends up with, and what is refused."""

from __future__ import annotations

import pytest

from shoal.server.settings import Settings, SettingsError
from shoal.server.tls import tls_config

TWO_TLS = {
    "listeners": "EXTERNAL://0.0.0.0:9093,INTERNAL://127.0.0.1:9094",
    "advertised_listeners": "EXTERNAL://broker.example.com:9093",
    "listener_security_protocol_map": "EXTERNAL:SSL,INTERNAL:SSL",
    "ssl_keystore_location": "/etc/shoal/shared.pem",
    "ssl_key_password": "shared-secret",
}


def test_a_listener_takes_its_own_values_and_the_shared_ones_for_the_rest() -> None:
    settings = Settings(
        **TWO_TLS,  # type: ignore[arg-type]
        listener_ssl_keystore_location="internal:/etc/shoal/internal.pem",
        listener_ssl_truststore_location="EXTERNAL:/etc/shoal/clients-ca.pem",
        listener_ssl_client_auth="EXTERNAL:required",
        ssl_cipher_suites="TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    )
    settings.broker_config()  # EXTERNAL binds every interface: fine, it requires certificates
    internal, external = settings.listener_ssl("INTERNAL"), settings.listener_ssl("EXTERNAL")
    assert (internal.keystore_location, internal.key_password) == ("/etc/shoal/internal.pem", "")
    assert (internal.truststore_location, internal.client_auth) == ("", "none")
    assert (external.keystore_location, external.key_password) == (
        "/etc/shoal/shared.pem",
        "shared-secret",
    )
    assert (external.truststore_location, external.client_auth) == (
        "/etc/shoal/clients-ca.pem",
        "required",
    )
    assert tls_config(settings, "EXTERNAL").cipher_suites == (
        "TLS_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    )
    assert tls_config(settings).client_auth == "none"  # the HTTP face keeps the ssl_* values


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"listener_ssl_client_auth": "PLAIN:required"}, "not an SSL or SASL_SSL listener"),
        ({"listener_ssl_client_auth": "INTERNAL:always"}, "must be none, requested or required"),
        ({"listener_ssl_client_auth": "INTERNAL"}, "LISTENER_NAME:VALUE"),
        ({"listener_ssl_client_auth": "INTERNAL:required"}, "listener_ssl_truststore_location"),
        (
            {"listener_ssl_keystore_location": "INTERNAL:/a.pem,internal:/b.pem"},
            "names INTERNAL twice",
        ),
        ({"ssl_keystore_location": ""}, "listener EXTERNAL uses TLS"),
        # Without its own rule, EXTERNAL (every interface) authenticates nobody.
        ({"listener_ssl_client_auth": "INTERNAL:none"}, "--allow-insecure"),
    ],
)
def test_bad_per_listener_tls_settings_are_refused(more: dict[str, str], message: str) -> None:
    values: dict[str, object] = {
        **TWO_TLS,
        "listener_ssl_client_auth": "EXTERNAL:required",
        "listener_ssl_truststore_location": "EXTERNAL:/ca.pem",
    }
    values["listeners"] = str(values["listeners"]) + ",PLAIN://127.0.0.1:9092"
    values["listener_security_protocol_map"] = "EXTERNAL:SSL,INTERNAL:SSL,PLAIN:PLAINTEXT"
    values.update(more)
    with pytest.raises(SettingsError, match=message):
        Settings(**values).broker_config()  # type: ignore[arg-type]
