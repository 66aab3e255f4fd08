"""The buffer type accepted wherever bytes are read without copying.

``collections.abc.Buffer`` arrived in Python 3.12; shoal supports 3.11, so the concrete union.
"""

from __future__ import annotations

from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview
