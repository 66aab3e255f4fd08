"""Every link of the project's Markdown, checked offline (see tests/docs/links.py)."""

from __future__ import annotations

from pathlib import Path

from tests.docs.links import (
    EXTERNAL_LIST,
    Link,
    external_problem,
    internal_problem,
    is_external,
    links,
    listed_externals,
    markdown_files,
    slug,
)


def _all_links() -> list[Link]:
    return [link for path in markdown_files() for link in links(path)]


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    broken = [
        f"{link.where}: {link.target}: {problem}"
        for link in _all_links()
        if not is_external(link.target)
        for problem in [internal_problem(link)]
        if problem is not None
    ]
    assert broken == []


def test_every_external_link_is_well_formed() -> None:
    bad = [
        f"{link.where}: {link.target}: {problem}"
        for link in _all_links()
        if is_external(link.target)
        for problem in [external_problem(link.target)]
        if problem is not None
    ]
    assert bad == []


def test_the_external_links_are_listed() -> None:
    """tests/docs/external_links.txt lists exactly the external addresses linked to: a new
    one is added there (and seen in review), a dropped one removed."""
    used = sorted({link.target for link in _all_links() if is_external(link.target)})
    assert listed_externals() == used, (
        f"update {EXTERNAL_LIST.relative_to(EXTERNAL_LIST.parents[2])} to list exactly the "
        "external links of the Markdown files, sorted"
    )


def test_the_checks_find_what_is_wrong(tmp_path: Path) -> None:
    """The checker can fail: a missing file, a missing anchor, a malformed address, and links
    inside code are not links."""
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## A `code` heading: yes!\n\n## Twice\n\n## Twice\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md#a-code-heading-yes) [twice](other.md#twice_1) [self](#page)\n"
        "[gone](missing.md) [no anchor](other.md#nowhere)\n"
        "[bad](https://exa) [ftp](ftp://example.com/x) <https://localhost/x>\n"
        "`[not a link](nowhere.md)`\n\n"
        "```text\n[nor this](nowhere.md)\n```\n"
    )
    found = links(page, root=tmp_path)
    assert [link.target for link in found] == [
        "other.md#a-code-heading-yes",
        "other.md#twice_1",
        "#page",
        "missing.md",
        "other.md#nowhere",
        "https://exa",
        "ftp://example.com/x",
        "https://localhost/x",
    ]
    internal = {
        link.target: internal_problem(link, root=tmp_path)
        for link in found
        if not is_external(link.target)
    }
    assert internal == {
        "other.md#a-code-heading-yes": None,
        "other.md#twice_1": None,
        "#page": None,
        "missing.md": "missing.md does not exist",
        "other.md#nowhere": "other.md has no heading #nowhere",
    }
    assert external_problem("https://exa") == "host 'exa' is not a domain name"
    assert external_problem("ftp://example.com/x") is not None
    assert external_problem("https://localhost/x") == "host 'localhost' is not a domain name"
    assert external_problem("https://github.com/linkedin/Burrow/wiki/Rules") is None
    assert external_problem("https://example.com:80x/") == "its port is not a number"
    assert slug("Against any Kafka cluster: `shoal console`") == (
        "against-any-kafka-cluster-shoal-console"
    )
