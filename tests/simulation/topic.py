"""The one topic the simulated clients write and read."""

from typing import Final

TOPIC: Final = "sim"
PARTITIONS: Final = 2
