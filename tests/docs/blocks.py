"""The fenced code blocks of the documentation, as the docs tests read them.

Every fence names its language. A ``sh``, ``bash``, ``console`` or ``python`` block is run by
tests/docs/test_guides.py unless the line right above its fence is one of:

- ``<!-- not-run: REASON -->``: shown, never run (a foreground server, a tool of another
  project, a secured broker); the reason is required and says why, or which test covers it.
- ``<!-- file: NAME -->``: written to ``NAME`` in the working directory (after the same address
  replacements), for a later block to run, as a reader saves it to a file.

A ``console`` block is commands after ``$ `` with what they print below them: each command
runs (its exit status is not checked, since these blocks show errors) and each line shown under
it must be a line it printed, ``...`` standing for any text.

``toml``, ``properties``, ``yaml`` and ``json`` blocks are parsed; ``text`` blocks (diagrams,
sample output) are only shown.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
DOCS: Final = REPO / "docs"
RUNNABLE: Final = frozenset({"sh", "bash", "console", "python"})
SHELL: Final = frozenset({"sh", "bash", "console"})
PARSED: Final = frozenset({"toml", "properties", "yaml", "json"})
LANGUAGES: Final = RUNNABLE | PARSED | {"text"}
OWN_BROKER_PAGES: Final = ("getting-started.md", "operations.md")
"""Pages whose runnable blocks start (and stop) their own ``shoal broker``."""
SHARED_BROKER_PAGES: Final = (
    "admin-api.md",
    "concepts.md",
    "framework.md",
    "message-contracts.md",
    "patterns.md",
    "troubleshooting.md",
)
"""Pages whose runnable blocks run against one broker started for them all (their topics differ)."""
_FENCE: Final = re.compile(r"^```(?P<language>\S*)\s*$")
_MARKER: Final = re.compile(r"^<!-- (?P<kind>not-run|file): (?P<value>.*?) -->$")


@dataclass(frozen=True, slots=True)
class Block:
    doc: str
    line: int
    """1-based line of the opening fence."""
    language: str
    code: str
    marker: str | None = None
    """``not-run`` or ``file``."""
    marker_value: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line} ({self.language or 'no language'})"

    @property
    def runs(self) -> bool:
        return self.language in RUNNABLE and self.marker != "not-run"


def pages() -> list[str]:
    return sorted(p.name for p in DOCS.glob("*.md"))


def read_blocks(path: Path, name: str | None = None) -> list[Block]:
    """Every fenced block of a Markdown file, in order, with the marker above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        found.append(
            Block(
                doc=name or path.name,
                line=i + 1,
                language=opening["language"],
                code="\n".join(lines[i + 1 : end]) + "\n",
                marker=marker["kind"] if marker else None,
                marker_value=marker["value"].strip() if marker else "",
            )
        )
        i = end + 1
    return found


def doc_blocks(doc: str) -> list[Block]:
    return read_blocks(DOCS / doc)


def console_steps(code: str) -> list[tuple[str, list[str]]]:
    """A ``console`` block as (command, the output lines shown under it) pairs. In a shown line
    ``...`` stands for any text (a path, a client library's own wording)."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def shows(expected: str, output: str) -> bool:
    """Whether a line of ``output`` is the shown line ``expected`` (``...``: any text)."""
    pattern = ".*".join(re.escape(part) for part in expected.strip().split("..."))
    return any(re.fullmatch(pattern, line.strip()) for line in output.splitlines())


def shell_commands(block: Block) -> list[str]:
    """The shell command lines of a shell block: continuations joined, heredoc bodies dropped,
    ``console`` prompts (``$ ``) stripped and their output lines left out."""
    lines = block.code.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands: list[str] = []
    heredoc_end: str | None = None
    pending = ""
    for line in lines:
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = pending + line
        pending = ""
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", command)
        if heredoc:
            heredoc_end = heredoc.group(1)
        commands.append(command)
    return commands


def shoal_invocations(command: str, variables: dict[str, str]) -> list[list[str]]:
    """The argument lists of each ``shoal`` command in a shell line (``a | shoal ...``,
    ``shoal ... > log 2>&1 &``), with ``$NAME`` of simple assignments in the block expanded.
    A ``$(...)`` or an unknown variable stays as its text, which parses as a plain word."""
    for name, value in variables.items():
        command = command.replace(f"${name}", value).replace(f"${{{name}}}", value)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote: not a command line this check can read
        return []
    found = []
    current: list[str] | None = None
    command_start = True  # where a command name stands: first, or after | & ; ( and NAME=value
    for word in [*words, ";"]:
        if word and set(word) <= set("|&;<>()"):
            if current is not None:
                # `... 2>&1`: the file descriptor number is the redirection's, not an argument.
                if current and current[-1].isdigit() and word.startswith((">", "<")):
                    current.pop()
                found.append(current)
            current = None
            command_start = not word.startswith((">", "<"))
            continue
        if current is not None:
            current.append(word)
        elif command_start and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word):
            continue
        elif command_start and (word == "shoal" or word.endswith("/bin/shoal")):
            current = []
        else:
            command_start = False
    return found


def assignments(block: Block) -> dict[str, str]:
    """``NAME="value"`` lines of a shell block (the README's ``B="-b host --command-config f"``)."""
    found = {}
    for command in shell_commands(block):
        match = re.fullmatch(r"\s*([A-Z_][A-Z0-9_]*)=(.*)", command)
        if match:
            try:
                (value,) = shlex.split(match.group(2)) or [""]
            except ValueError:
                continue
            found[match.group(1)] = value
    return found
