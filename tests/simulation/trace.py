"""Print one seed's trace: ``python -m tests.simulation.trace SEED STEPS``.

Used by the replay test, which runs it in two processes with different hash seeds: a replay
on another day runs in another process, so the trace must not depend on Python's string hashing
(set order) or anything else of the process.
"""

from __future__ import annotations

import sys

from tests.simulation.sim import Simulation


def main() -> None:
    simulation = Simulation(int(sys.argv[1]), int(sys.argv[2]))
    try:
        simulation.run()
    finally:
        print("\n".join(simulation.trace))
        print(f"fsyncs: {simulation.fs.fsync_count}")


if __name__ == "__main__":
    main()
