"""The ACL settings (authorizer_class_name, super_users, allow_everyone_if_no_acl_found), as
Kafka names them, from a config file, the environment or flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.security.acl_authorizer import AuthorizerConfig
from shoal.server.settings import Settings, SettingsError, load_settings

KAFKA_CLASS = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def test_no_authorizer_by_default() -> None:
    assert Settings().broker_config().authorizer is None


def test_kafkas_names_from_a_config_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "secure.toml"
    config.write_text(
        f'"authorizer.class.name" = "{KAFKA_CLASS}"\n"super.users" = "User:admin; User:ops"\n'
    )
    settings = load_settings(str(config), {"SHOAL_ALLOW_EVERYONE_IF_NO_ACL_FOUND": "true"})
    assert settings.broker_config().authorizer == AuthorizerConfig(
        frozenset({"User:admin", "User:ops"}), allow_everyone_if_no_acl_found=True
    )


def test_the_short_name() -> None:
    settings = load_settings(None, {}, {"authorizer_class_name": "standard"})
    assert settings.broker_config().authorizer == AuthorizerConfig()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"authorizer_class_name": "kafka.security.authorizer.AclAuthorizer"},
            "StandardAuthorizer",
        ),
        ({"authorizer_class_name": "standard", "super_users": "admin"}, "principalType"),
    ],
)
def test_bad_values_are_refused_with_what_to_do(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, {}, overrides).broker_config()
