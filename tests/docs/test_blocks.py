"""Every code block of the documentation is accounted for, and what the docs name exists.

- Each fenced block names a language; a runnable one (sh, bash, console, python) is run by
  tests/docs/test_guides.py (its page is in one of that test's page lists) or marked not-run
  with a reason; toml, properties, yaml and json blocks parse, and a toml block (a shoal config
  file) names only real settings.
- Every ``shoal ...`` command in a shell block of docs/ or the README, run or not, parses with
  the real ``shoal`` argparse parser; every ``shoal ...`` in inline code names a real command
  and real ``--flags`` (issue 21: the docs are true to the code).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Final

import pytest
import yaml

from shoal.cli import build_parser
from shoal.server.settings import Settings
from tests.docs.blocks import (
    DOCS,
    LANGUAGES,
    OWN_BROKER_PAGES,
    REPO,
    SHARED_BROKER_PAGES,
    SHELL,
    Block,
    assignments,
    console_steps,
    doc_blocks,
    pages,
    read_blocks,
    shell_commands,
    shoal_invocations,
    shows,
)

SETTING_NAMES: Final = frozenset(f.name for f in fields(Settings))
_INLINE_SHOAL: Final = re.compile(r"`(shoal [^`]+)`")


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in doc_blocks(page)]


def documents() -> list[tuple[str, Path]]:
    """Every page, and the README, which names commands too."""
    return [(p, DOCS / p) for p in pages()] + [("README.md", REPO / "README.md")]


def test_every_block_names_a_known_language() -> None:
    unknown = [b.where for b in all_blocks() if b.language not in LANGUAGES]
    assert not unknown, f"fences need one of {sorted(LANGUAGES)}: {unknown}"


def test_every_not_run_marker_gives_a_reason() -> None:
    bare = [b.where for b in all_blocks() if b.marker is not None and not b.marker_value]
    assert not bare


def test_every_runnable_block_is_run() -> None:
    run_pages = set(OWN_BROKER_PAGES) | set(SHARED_BROKER_PAGES)
    orphans = [b.where for b in all_blocks() if b.runs and b.doc not in run_pages]
    assert not orphans, (
        "these blocks would run, but no test runs their page: add the page to a list in "
        f"tests/docs/test_guides.py, or mark the block not-run with a reason: {orphans}"
    )
    idle = [p for p in run_pages if not any(b.runs for b in doc_blocks(p))]
    assert not idle, f"pages listed to run but with nothing to run: {idle}"


def _properties(text: str) -> dict[str, str]:
    parsed = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        key, sep, value = stripped.partition("=")
        assert sep and key.strip(), f"line {n} is not KEY=VALUE: {line!r}"
        parsed[key.strip()] = value.strip()
    return parsed


@pytest.mark.parametrize("block", [b for b in all_blocks() if b.language == "toml"], ids=str)
def test_toml_blocks_are_shoal_settings(block: Block) -> None:
    doc = tomllib.loads(block.code)
    unknown = set(doc) - SETTING_NAMES
    assert not unknown, f"{block.where}: not settings of shoal broker: {unknown}"


def test_other_data_blocks_parse() -> None:
    parsers = {"json": json.loads, "yaml": yaml.safe_load, "properties": _properties}
    checked = 0
    for block in all_blocks():
        if block.language in parsers:
            try:
                parsers[block.language](block.code)
            except Exception as exc:
                raise AssertionError(f"{block.where} does not parse: {exc}") from exc
            checked += 1
    assert checked


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """None if ``shoal ARGV`` parses, else argparse's complaint."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # --help and --version exit 0
            return err.getvalue().strip().splitlines()[-1]
    return None


def test_shoal_commands_in_shell_blocks_parse() -> None:
    parser = build_parser()
    checked, wrong = 0, []
    for name, path in documents():
        for block in read_blocks(path, name):
            if block.language not in SHELL:
                continue
            variables = assignments(block)
            for command in shell_commands(block):
                for argv in shoal_invocations(command, variables):
                    checked += 1
                    complaint = _parse(parser, argv)
                    if complaint:
                        wrong.append(f"{block.where}: shoal {' '.join(argv)}: {complaint}")
    assert checked > 40
    assert not wrong, "\n".join(wrong)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _inline_problem(parser: argparse.ArgumentParser, words: list[str]) -> str | None:
    """What is wrong with an inline mention like ``shoal group describe --watch``, if anything:
    every word that stands where a subcommand goes must be one, and every ``--flag`` must be
    an option of the command reached."""
    current = parser
    for word in words:
        subcommands = _subcommands(current)
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            if option not in current._option_string_actions:
                return f"{current.prog} has no {option}"
        elif subcommands and not word.startswith("-"):
            names = [w for w in re.split(r"[|,]", word) if w]
            for each in names:
                if each.isupper() or each in ("...",):  # a placeholder: COMMAND, TOPIC
                    return None
                if each not in subcommands:
                    return f"{current.prog} has no command {each!r}"
            current = subcommands[names[0]]
    return None


def test_shoal_commands_in_prose_exist() -> None:
    parser = build_parser()
    checked, wrong = 0, []
    for name, path in documents():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith(("```", "    ")):
                continue
            for mention in _INLINE_SHOAL.findall(line):
                words = [w for w in re.split(r"\s+", mention) if w][1:]
                words = [w.strip("[]") for w in words if w not in ("[", "]")]
                checked += 1
                problem = _inline_problem(parser, words)
                if problem:
                    wrong.append(f"{name}:{n}: `{mention}`: {problem}")
    assert checked > 30
    assert not wrong, "\n".join(wrong)


def test_console_output_lines_are_matched_with_ellipses() -> None:
    """The check console blocks get can fail: a shown line must be one the command printed."""
    steps = console_steps("$ shoal x\nshoal x: cannot reach ... at 1.2.3.4\n$ true\n")
    assert steps == [("shoal x", ["shoal x: cannot reach ... at 1.2.3.4"]), ("true", [])]
    printed = "noise\nshoal x: cannot reach a broker at 1.2.3.4\n"
    assert shows(steps[0][1][0], printed)
    assert not shows(steps[0][1][0], "shoal x: cannot reach a broker at 5.6.7.8\n")
    assert not shows("shoal x: topic 'a' does not exist", "shoal x: topic 'b' does not exist")


def test_the_readme_links_to_files_that_exist() -> None:
    """The README is not part of the site (whose links the build checks): its own links and the
    ``docs/...`` pages it names are checked here."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r"`(docs/[\w-]+\.md)`", text)
    targets = [t for t in targets if "://" not in t]
    assert targets
    missing = sorted({t for t in targets if not (REPO / t).exists()})
    assert not missing
