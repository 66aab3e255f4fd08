"""The process's own figures under the names Prometheus' client libraries use
(``process_*``), and the free space of the data directory.

Read from ``/proc/self`` (Linux) at scrape time; where it is missing the family is left out
rather than reported as zero.
"""

from __future__ import annotations

import os
import resource
import shutil
import time

from shoal.metrics.exposition import Exposition, label_text

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_STARTED_S = time.time()


def write_process(out: Exposition) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent")
    out.sample("process_cpu_seconds_total", "", usage.ru_utime + usage.ru_stime)
    statm = _read("/proc/self/statm")
    if statm:
        virtual_pages, resident_pages = (int(part) for part in statm.split()[:2])
        out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes")
        out.sample("process_virtual_memory_bytes", "", virtual_pages * _PAGE_BYTES)
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes")
        out.sample("process_resident_memory_bytes", "", resident_pages * _PAGE_BYTES)
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = -1
    if open_fds >= 0:
        out.family("process_open_fds", "gauge", "Number of open file descriptors")
        out.sample("process_open_fds", "", open_fds)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out.family("process_max_fds", "gauge", "Maximum number of open file descriptors")
    out.sample("process_max_fds", "", soft)
    out.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch")
    out.sample("process_start_time_seconds", "", _start_time_s())


def write_disk(out: Exposition, data_dir: str) -> None:
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError:
        return
    labels = label_text((("path", data_dir),))
    out.family(
        "shoal_data_dir_free_bytes",
        "gauge",
        "Free bytes on the filesystem of the data directory (for unprivileged users)",
    )
    out.sample("shoal_data_dir_free_bytes", labels, usage.free)
    out.family("shoal_data_dir_capacity_bytes", "gauge", "Size of that filesystem in bytes")
    out.sample("shoal_data_dir_capacity_bytes", labels, usage.total)


def _start_time_s() -> float:
    """From /proc (the kernel's boot time plus the process's start in clock ticks), else the
    import time of this module (close: it is imported as the broker starts)."""
    stat = _read("/proc/self/stat")
    boot = _read("/proc/stat")
    if stat and boot:
        # The command name (field 2) may hold spaces; fields after its ')' are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        start_ticks = int(fields[19])
        for line in boot.splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) + start_ticks / _CLOCK_TICKS
    return _STARTED_S


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None
