"""What Kafka's Java tools printed, checked: shared by the Java tools tests."""

from __future__ import annotations

import subprocess


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout
