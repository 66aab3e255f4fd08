#!/usr/bin/env python3
"""List the import cycles among the modules of each package of shoal (issue 18).

Inside every package, its children (modules, and subpackages standing for everything under
them) must import each other without a cycle: modules that import each other can be neither
read, tested nor changed alone, and which one finishes loading first depends on who imported
first. The cycle is broken by moving what both need into a small module both import, or by
passing the dependency in.

An import under ``if TYPE_CHECKING:`` exists only for the type checker, so a cycle that closes
only through such imports does not bite at run time; it is still a knot in the design, and is
allowed only when one of its TYPE_CHECKING imports carries a comment ``# import cycle: <why>``
on the import's line or on a line between it and its ``if TYPE_CHECKING:``. An import inside a
function is a run-time import like any other (it hides a cycle, it does not break it).

A package's own ``__init__`` is one more node among its children, so a child importing the
package (``from shoal.storage import X`` in ``shoal.storage.cleaner``) while the ``__init__``
imports that child is a cycle too; import-linter's ``acyclic_siblings`` does not see those.

Usage: ``python scripts/import_cycles.py [PACKAGE]`` (default ``shoal``); prints every cycle
and exits 1 when one is not allowed. The package is found on ``sys.path``, so
``PYTHONPATH=<copy>`` checks a copy (the tests plant cycles in one).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import grimp

JUSTIFICATION = "# import cycle:"
# How far above a TYPE_CHECKING import its justification may sit (the block's own lines).
JUSTIFICATION_LINES_MAX = 20


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line_number: int
    line_contents: str
    type_checking_only: bool
    justified: bool

    def describe(self) -> str:
        kind = " [TYPE_CHECKING]" if self.type_checking_only else ""
        why = " [justified]" if self.justified else ""
        return f"{self.importer}:{self.line_number} `{self.line_contents}`{kind}{why}"


@dataclass(frozen=True)
class Cycle:
    package: str
    members: tuple[str, ...]
    imports: tuple[Import, ...]
    # Closes only through TYPE_CHECKING imports (none of them justified, or it would not be here).
    type_checking_only: bool

    def describe(self) -> str:
        kind = "TYPE_CHECKING-only cycle" if self.type_checking_only else "cycle"
        lines = [f"{self.package}: {kind} among {', '.join(self.members)}"]
        # One import per pair of children (a run-time one first): a broker's handlers name
        # it in sixty modules, and one line per pair says where to cut.
        pairs: dict[tuple[str, str], list[Import]] = {}
        for imp in self.imports:
            source = child_of(self.package, imp.importer) or imp.importer
            target = child_of(self.package, imp.imported) or imp.imported
            pairs.setdefault((source, target), []).append(imp)
        for imps in pairs.values():
            imps.sort(key=lambda imp: imp.type_checking_only)
            more = f" (and {len(imps) - 1} more)" if len(imps) > 1 else ""
            lines.append(f"  {imps[0].describe()}{more}")
        return "\n".join(lines)


def module_path(root_dir: Path, root: str, module: str, is_package: bool) -> Path:
    parts = module.split(".")[len(root.split(".")) :]
    base = root_dir.joinpath(*parts)
    return base / "__init__.py" if is_package else base.with_suffix(".py")


def is_justified(source_lines: list[str], line_number: int) -> bool:
    """Whether the TYPE_CHECKING import at ``line_number`` (1-based) says why it closes a cycle."""
    first = max(0, line_number - 1 - JUSTIFICATION_LINES_MAX)
    for index in range(line_number - 1, first - 1, -1):
        line = source_lines[index]
        marker = line.find(JUSTIFICATION)
        if marker >= 0 and line[marker + len(JUSTIFICATION) :].strip():
            return True
        if line.lstrip().startswith("if TYPE_CHECKING"):
            return False
    return False


def collect_imports(root: str) -> list[Import]:
    """Every import between two modules of ``root``, each line marked run-time or TYPE_CHECKING."""
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{root} is not a package on sys.path")
    root_dir = Path(next(iter(spec.submodule_search_locations)))
    full = grimp.build_graph(root, cache_dir=None)
    runtime = grimp.build_graph(root, exclude_type_checking_imports=True, cache_dir=None)
    sources: dict[str, list[str]] = {}
    found: list[Import] = []
    for importer in sorted(full.modules):
        for imported in sorted(full.find_modules_directly_imported_by(importer)):
            if imported != root and not imported.startswith(root + "."):
                continue
            runtime_lines = {
                detail["line_number"]
                for detail in runtime.get_import_details(importer=importer, imported=imported)
            }
            for detail in full.get_import_details(importer=importer, imported=imported):
                type_checking_only = detail["line_number"] not in runtime_lines
                justified = False
                if type_checking_only:
                    if importer not in sources:
                        path = module_path(
                            root_dir, root, importer, bool(full.find_children(importer))
                        )
                        if not path.exists():  # a one-module package's __init__
                            path = module_path(root_dir, root, importer, True)
                        sources[importer] = path.read_text().splitlines()
                    justified = is_justified(sources[importer], detail["line_number"])
                found.append(
                    Import(
                        importer=importer,
                        imported=imported,
                        line_number=detail["line_number"],
                        line_contents=detail["line_contents"],
                        type_checking_only=type_checking_only,
                        justified=justified,
                    )
                )
    return found


def child_of(package: str, module: str) -> str | None:
    """The child of ``package`` that ``module`` is or lies under, or the package itself (its
    ``__init__``, a node of its own); None for a module outside it."""
    if module == package:
        return package
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1 :].split(".")[0]


def strongly_connected(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Groups of two or more nodes that all reach each other (packages hold tens of children)."""
    reach: dict[str, set[str]] = {}
    for start in edges:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        reach[start] = seen
    groups: set[tuple[str, ...]] = set()
    for node, reached in reach.items():
        group = tuple(sorted({node} | {other for other in reached if node in reach.get(other, ())}))
        if len(group) > 1:
            groups.add(group)
    return sorted(groups)


def package_cycles(package: str, imports: list[Import]) -> list[Cycle]:
    edges: dict[str, set[str]] = {}
    by_edge: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        source, target = child_of(package, imp.importer), child_of(package, imp.imported)
        if source is None or target is None or source == target:
            continue
        edges.setdefault(source, set()).add(target)
        by_edge.setdefault((source, target), []).append(imp)
    cycles = []
    for members in strongly_connected(edges):
        inside = [
            imp
            for (source, target), imps in sorted(by_edge.items())
            if source in members and target in members
            for imp in imps
        ]
        cycles.append(Cycle(package, members, tuple(inside), type_checking_only=False))
    return cycles


def find_cycles(root: str) -> tuple[list[Cycle], list[Cycle]]:
    """(cycles not allowed, cycles allowed by a justified TYPE_CHECKING import) inside ``root``."""
    imports = collect_imports(root)
    unjustified = [imp for imp in imports if not imp.justified]
    runtime = [imp for imp in imports if not imp.type_checking_only]
    # Every package that holds a module taking part in an import (a prefix of its name).
    modules = {name for imp in imports for name in (imp.importer, imp.imported)}
    packages = sorted(
        {root}
        | {name.rsplit(".", depth)[0] for name in modules for depth in range(1, name.count("."))}
    )
    bad: list[Cycle] = []
    allowed: list[Cycle] = []
    for package in packages:
        runtime_groups = [set(c.members) for c in package_cycles(package, runtime)]
        kept = package_cycles(package, unjustified)
        for cycle in kept:
            # A group that holds a run-time cycle is a run-time cycle, whatever else it holds.
            at_run_time = any(group <= set(cycle.members) for group in runtime_groups)
            bad.append(
                Cycle(
                    cycle.package, cycle.members, cycle.imports, type_checking_only=not at_run_time
                )
            )
        kept_members = {c.members for c in kept}
        allowed += [c for c in package_cycles(package, imports) if c.members not in kept_members]
    return bad, allowed


def main(argv: list[str]) -> int:
    root = argv[1] if len(argv) > 1 else "shoal"
    bad, allowed = find_cycles(root)
    for cycle in allowed:
        print(f"allowed (justified TYPE_CHECKING import):\n{cycle.describe()}")
    for cycle in bad:
        print(cycle.describe())
    print(f"{len(bad)} import cycle(s) not allowed inside the packages of {root}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
