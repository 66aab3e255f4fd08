"""Fetch every external address the documentation links to (tests/docs/external_links.txt)
and report the ones that do not answer 2xx/3xx: `make linkcheck-external`, where there is a
network. The offline checks (well-formed, listed, relative links and anchors) are
tests/docs/test_links.py; this is the part that needs the Internet, so no test runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

LIST = Path(__file__).resolve().parents[1] / "tests" / "docs" / "external_links.txt"
TIMEOUT_S = 15.0
"""Per address: a slow site is reported, not waited on forever."""


def main() -> int:
    addresses = [
        line
        for line in LIST.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and not line.startswith("mailto:")
    ]
    failed = 0
    with httpx.Client(follow_redirects=True, timeout=TIMEOUT_S) as client:
        for address in addresses:
            try:
                # GET, not HEAD: some sites answer HEAD with 404 or 405.
                status = client.get(address).status_code
                problem = None if status < 400 else f"HTTP {status}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            print(
                f"{'ok  ' if problem is None else 'FAIL'} {address}"
                + (f"  ({problem})" if problem else "")
            )
            failed += problem is not None
    print(f"{len(addresses) - failed} of {len(addresses)} external links answer")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
