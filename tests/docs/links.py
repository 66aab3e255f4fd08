"""The links of the project's Markdown, checked offline (issue 21).

``mkdocs build --strict`` checks the links between pages under docs/ (an integration test, as
it runs the build); this checks, in a second and without the build, every Markdown file in the
repository (docs/, the READMEs): a relative link's file exists and its anchor is a heading of
that file; an external link is a well-formed ``http(s)`` or ``mailto`` address, and is one of
:data:`EXTERNAL_LIST`, the committed list of every external address the documentation links
to, so that a new one is seen in review and ``scripts/check_external_links.py`` can fetch them
all where there is a network.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from tests.docs.blocks import REPO

EXTERNAL_LIST: Final = REPO / "tests" / "docs" / "external_links.txt"
_FENCE: Final = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN: Final = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE: Final = re.compile(
    r"!?\[(?P<text>[^\]]*)\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)"
)
_AUTOLINK: Final = re.compile(r"<(?P<target>(?:https?|mailto):[^>\s]+)>")
_DEFINITION: Final = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(?P<target>\S+)")
_HEADING: Final = re.compile(r"^(#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_HTML_ID: Final = re.compile(r"""\bid=["'](?P<id>[^"']+)["']""")
_HOST_LABEL: Final = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SCHEMES: Final = ("http", "https", "mailto")


@dataclass(frozen=True, slots=True)
class Link:
    source: str
    """The Markdown file, relative to the repository."""
    line: int
    target: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def markdown_files() -> list[Path]:
    """Every Markdown file git tracks (the site's pages and the READMEs)."""
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in sorted(listed)]


def links(path: Path, root: Path = REPO) -> list[Link]:
    """The link targets of a Markdown file, outside code blocks and code spans."""
    found: list[Link] = []
    in_fence = False
    source = str(path.relative_to(root))
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        text = _CODE_SPAN.sub("", line)
        targets = [m["target"].strip("<>") for m in _INLINE.finditer(text)]
        targets += [m["target"] for m in _AUTOLINK.finditer(text)]
        definition = _DEFINITION.match(text)
        if definition:
            targets.append(definition["target"].strip("<>"))
        found += [Link(source, number, target) for target in targets]
    return found


def slug(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc (MkDocs) makes it: markup dropped, ASCII,
    lower case, punctuation removed, spaces and hyphens as one hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The anchors a Markdown file has: its headings' (a repeated one gets ``_1``, ``_2``, as
    the toc numbers them) and any HTML ``id``."""
    found: set[str] = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading["text"])
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}_{n}"
            found.add(name)
        found.update(m["id"] for m in _HTML_ID.finditer(line))
    return found


def is_external(target: str) -> bool:
    return urlsplit(target).scheme != ""


def external_problem(target: str) -> str | None:
    """Why an external address is malformed, or None."""
    parts = urlsplit(target)
    if parts.scheme not in _SCHEMES:
        return f"scheme {parts.scheme!r} is not one of {', '.join(_SCHEMES)}"
    if any(c.isspace() for c in target):
        return "holds white space"
    if parts.scheme == "mailto":
        return None if re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]+", parts.path) else "no address"
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"host {host!r} is not a domain name"
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return "its port is not a number"
    return None


def internal_problem(link: Link, root: Path = REPO) -> str | None:
    """Why a relative link leads nowhere (a missing file, or anchor in a Markdown file)."""
    path_part, _, anchor = link.target.partition("#")
    source = root / link.source
    target = (source.parent / unquote(path_part)).resolve() if path_part else source
    if not target.exists():
        return f"{path_part} does not exist"
    if not target.is_relative_to(root.resolve()):
        return f"{path_part} is outside the repository"
    if anchor and target.suffix == ".md" and unquote(anchor) not in anchors(target):
        return f"{target.relative_to(root.resolve())} has no heading #{anchor}"
    return None


def listed_externals() -> list[str]:
    lines = EXTERNAL_LIST.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]
