"""ssl.principal.mapping.rules over Kafka's own examples (SslPrincipalMapperTest and the
documentation), and the RFC 2253 form of a certificate subject that the rules see."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.security.principal import (
    NoMatchingRule,
    PrincipalMapper,
    PrincipalMappingError,
    rfc2253_name,
)


@pytest.mark.parametrize(
    "rules",
    [
        "DEFAULT",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
        "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
        "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
        "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        "",
        ",   , , ,      , , ,   ",
    ],
)
def test_valid_rules_parse(rules: str) -> None:
    PrincipalMapper(rules)


@pytest.mark.parametrize(
    "rules",
    [
        "default",
        "DEFAUL",
        "DEFAULT/L",
        "DEFAULT/U",
        "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
        "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
    ],
)
def test_invalid_rules_are_refused(rules: str) -> None:
    with pytest.raises(PrincipalMappingError, match=r"invalid ssl\.principal\.mapping\.rules"):
        PrincipalMapper(rules)


def test_kafka_mapper_examples() -> None:
    mapper = PrincipalMapper(
        ", ".join(
            [
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
                "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
                "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
                "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
                "DEFAULT",
            ]
        )
    )
    assert mapper.name("CN=Duke,OU=ServiceUsers,O=Org,C=US") == "duke"
    assert mapper.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme"
    assert mapper.name("cn=duke,ou=sme,dc=mycp,dc=com") == "DUKE@SME"
    assert mapper.name("cN=duke,OU=JavaSoft,O=Sun Microsystems") == "DUKE"
    assert (
        mapper.name("OU=JavaSoft,O=Sun Microsystems,C=US") == "OU=JavaSoft,O=Sun Microsystems,C=US"
    )


def test_documentation_example() -> None:
    # Kafka's security documentation, "Customizing SSL User Name".
    mapper = PrincipalMapper(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,"
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,"
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,"
        "DEFAULT"
    )
    dn = "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
    assert mapper.name(dn) == "serviceuser"
    dn = "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
    assert mapper.name(dn) == "adminuser@admin"


def test_escaped_comma_in_a_name() -> None:
    mapper = PrincipalMapper("RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT")
    assert mapper.name("CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz") == "Tkac\\, Adam"


def test_no_matching_rule_refuses_the_name() -> None:
    mapper = PrincipalMapper("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/")
    with pytest.raises(NoMatchingRule, match="CN=x,OU=Other"):
        mapper.name("CN=x,OU=Other")
    with pytest.raises(NoMatchingRule):
        PrincipalMapper("").name("CN=x")


def test_replacement_references() -> None:
    # A reference past the last group stays literal (Kafka escapes it); $0 is the whole match;
    # \\$ is a dollar sign; Java's named groups work.
    assert PrincipalMapper("RULE:^CN=(\\w+)$/$1@$4/").name("CN=bob") == "bob@$4"
    assert PrincipalMapper("RULE:^CN=(\\w+)$/<$0>/").name("CN=bob") == "<CN=bob>"
    assert PrincipalMapper("RULE:^CN=(\\w+)$/\\$$1/").name("CN=bob") == "$bob"
    assert PrincipalMapper("RULE:^CN=(?<who>\\w+)$/${who}!/U").name("CN=bob") == "BOB!"
    # Groups 1..12: $12 is group 12, $13 is group 1 then "3".
    pattern = "".join("(.)" for _ in range(12))
    name = "abcdefghijkl"
    assert PrincipalMapper(f"RULE:^{pattern}$/$12$13/").name(name) == "la3"


def test_rfc2253_name_most_specific_first_with_keywords_and_escapes() -> None:
    subject = (
        (("countryName", "US"),),
        (("stateOrProvinceName", "CA"),),
        (("organizationName", "Acme, Inc."),),
        (("organizationalUnitName", "Eng"), ("organizationalUnitName", "Ops")),
        (("commonName", " svc+1 "),),
    )
    assert rfc2253_name(subject) == "CN=\\ svc\\+1\\ ,OU=Eng+OU=Ops,O=Acme\\, Inc.,ST=CA,C=US"


def test_rfc2253_name_writes_an_email_address_as_java_does() -> None:
    # X500Principal.getName(RFC2253) has no keyword for emailAddress: OID=#<DER IA5String>.
    subject = ((("commonName", "bob"),), (("emailAddress", "b@x.io"),))
    assert rfc2253_name(subject) == "1.2.840.113549.1.9.1=#16066240782e696f,CN=bob"


def test_rfc2253_escapes_as_x500_principal_does() -> None:
    # Every one of ,=+<>#;"\ wherever it is, and every leading and trailing space.
    subject = ((("commonName", "  a=b#c;d "),),)
    assert rfc2253_name(subject) == "CN=\\ \\ a\\=b\\#c\\;d\\ "


def test_a_replacement_naming_a_missing_group_is_refused_when_parsed() -> None:
    with pytest.raises(PrincipalMappingError, match="names group 'who'"):
        PrincipalMapper("RULE:^CN=(\\w+)$/${who}/")


RULE_TEXT = st.text(alphabet=st.sampled_from("RULE:DEFAULT/$\\{}()^.*?,LU0123 =CNcn"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(rules=RULE_TEXT, name=st.text(max_size=40))
def test_any_rules_parse_or_are_refused_clearly_and_any_name_maps_or_matches_no_rule(
    rules: str, name: str
) -> None:
    try:
        mapper = PrincipalMapper(rules)
    except PrincipalMappingError:
        return
    try:
        assert isinstance(mapper.name(name), str)
    except NoMatchingRule:
        pass


@settings(max_examples=200, deadline=None)
@given(
    subject=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["commonName", "organizationName", "emailAddress", "title"]),
                st.text(max_size=12),
            ),
            min_size=1,
            max_size=2,
        ),
        max_size=4,
    )
)
def test_every_special_character_of_a_value_is_escaped(
    subject: list[list[tuple[str, str]]],
) -> None:
    name = rfc2253_name(subject)
    # Unescaped, the separators between RDNs are the only commas: as many as RDNs less one.
    unescaped_commas = len(re.findall(r"(?<!\\),", name.replace("\\\\", "")))
    assert unescaped_commas == max(len(subject) - 1, 0)
