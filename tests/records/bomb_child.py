"""Run by test_bombs_under_an_address_space_limit in a child process (not a test module).

Builds the bombs, then caps the process's address space at what it uses plus 256 MiB and
decompresses each. ``bounded`` uses shoal's decompress; ``unbounded`` calls cramjam directly,
to prove the cap is tight enough to catch a decompressor that does not stop.
"""

from __future__ import annotations

import resource
import sys

import cramjam

from shoal.records import Compression, DecompressionLimitError, decompress
from tests.records.helpers import MIB, gzip_bomb, lz4_bomb, snappy_bomb, snappy_liar, zstd_bomb

HEADROOM_BYTES = 256 * MIB
LIMIT_BYTES = 16 * MIB


def address_space_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def cap_address_space() -> None:
    cap = address_space_bytes() + HEADROOM_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))


def main(mode: str) -> int:
    if mode == "unbounded":
        bomb = zstd_bomb(1024)
        cap_address_space()
        cramjam.zstd.decompress(bomb)
        print("unbounded decompression finished under the cap")
        return 0
    bombs = [
        (Compression.GZIP, gzip_bomb(1024)),
        (Compression.ZSTD, zstd_bomb(1024)),
        (Compression.LZ4, lz4_bomb(1024)),
        (Compression.SNAPPY, snappy_bomb(64)),
        (Compression.SNAPPY, snappy_liar(2**32 - 1)),
    ]
    cap_address_space()
    for codec, bomb in bombs:
        try:
            decompress(codec, bomb, LIMIT_BYTES)
        except DecompressionLimitError:
            continue
        print(f"{codec.name}: no DecompressionLimitError")
        return 1
    print("bounded ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
