"""compare.py's outputs: the markdown tables (ratios shoal / peer, then the figures) and a chart."""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

Row = tuple[str, str, bool]
"""(label, /-separated key path inside a size's results, higher is better)."""


def environment() -> dict[str, Any]:
    """The machine a bench ran on, for its results: cores, Python, platform and the load
    average before it started (other work on the cores makes every figure an upper bound)."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": os.getloadavg(),
        "shoal_event_loop": shoal_event_loop(),
    }


def shoal_event_loop() -> str:
    """The loop ``shoal broker`` runs on here with its default ``event_loop = auto``."""
    try:
        import uvloop
    except ImportError:
        return f"asyncio (Python {platform.python_version()})"
    return f"uvloop {uvloop.__version__}"


def rows_for(rates: list[int]) -> list[Row]:
    rows: list[Row] = [
        ("produce records/s", "produce/records_per_s/median", True),
        ("consume records/s", "consume/records_per_s/median", True),
    ]
    for rate in rates:
        for q in ("p50", "p99", "p99.9"):
            rows.append((f"e2e {q} ms at {rate:,}/s", f"latency_{rate}/latency_ms/{q}", False))
    return rows


def lookup(cell: dict[str, Any], path: str) -> float:
    """The figure at ``path``; NaN (shown as n/a) where the system was not measured on it (the
    secured rows run no latency workload)."""
    value: Any = cell
    for part in path.split("/"):
        if part not in value:
            return math.nan
        value = value[part]
    return float(value)


def sustained_mark(cell: dict[str, Any], path: str) -> str:
    """'*' beside a latency figure taken at a rate the system did not sustain."""
    if not path.startswith("latency_"):
        return ""
    run = cell.get(path.split("/")[0])
    if run is None or run["sustained"]:
        return ""
    return "†" if not run["sender_kept_up"] else "*"


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def ratio_text(shoal: float, peer: float) -> str:
    if not peer or math.isnan(peer) or math.isnan(shoal):
        return "n/a"
    return f"{shoal / peer:.2f}"


def write_markdown(results: dict[str, Any], path: Path) -> str:
    cfg = results["config"]
    systems: dict[str, Any] = results["systems"]
    peers = [name for name in systems if name != "shoal"]
    env = results["environment"]
    lines = [
        f"# shoal compared with its peers ({'quick' if cfg['quick'] else 'full'} run, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)",
        "",
        f"{env['cores']} cores shared with other work (load average before "
        f"{env['load_average_before'][0]:.1f}, after {env['load_average_after'][0]:.1f}); "
        f"one system runs at a time; shoal runs on {env.get('shoal_event_loop', 'asyncio')}; "
        "figures are medians of "
        f"{cfg['repeats']} throughput runs of {cfg['seconds']} s, latency runs of "
        f"{cfg['latency_seconds']} s (first {cfg['warmup_s']} s dropped; of "
        f"{cfg.get('latency_repeats', 1)} runs per rate and size, the one with the median p99); "
        "1 partition / stream / queue."
        + (
            f" **Loaded mode**: {cfg['background_load']} busy processes spun beside each "
            "system while it was measured."
            if cfg.get("background_load")
            else ""
        ),
        "",
        "Ratios are shoal / peer. Throughput rows: above 1 means shoal is faster. Latency rows: "
        "below 1 means shoal is faster. `*` the system did not sustain the offered rate "
        "(records lost or p99 over 1 s); `†` the load generator itself fell behind the rate.",
        "",
    ]
    if "shoal" not in systems:
        lines.append("(shoal was not in this run: no ratios)")
    for size in [f"{s}B" for s in cfg["sizes"]]:
        rows = rows_for(cfg["rates"])
        if "shoal" in systems and peers:
            lines += [f"## {size} records: shoal / peer", ""]
            lines.append("| workload | " + " | ".join(peers) + " |")
            lines.append("|---|" + "---:|" * len(peers))
            shoal_cell = systems["shoal"]["results"][size]
            for label, key, _ in rows:
                cells = []
                for peer in peers:
                    peer_cell = systems[peer]["results"][size]
                    mark = sustained_mark(shoal_cell, key) + sustained_mark(peer_cell, key)
                    ratio = ratio_text(lookup(shoal_cell, key), lookup(peer_cell, key))
                    cells.append(ratio + (f" ({mark})" if mark else ""))
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
        names = list(systems)
        lines += [f"## {size} records: figures", ""]
        lines.append("| workload | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for label, key, _ in rows:
            cells = []
            for name in names:
                cell = systems[name]["results"][size]
                cells.append(fmt(lookup(cell, key)) + sustained_mark(cell, key))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        for label, key in (
            ("client alone records/s", "client_alone/records_per_s"),
            ("client CPU in produce", "produce/runs"),
            ("client CPU in consume", "consume/runs"),
        ):
            cells = []
            for name in names:
                cell = systems[name]["results"][size]
                if key.endswith("runs"):
                    runs = cell[key.split("/")[0]]["runs"]
                    cpu = max(r["client_cpu_fraction"] for r in runs)
                    cells.append(f"{cpu:.0%}")
                else:
                    cells.append(fmt(lookup(cell, key)))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, error in results.get("failed", {}).items():
        lines.append(f"**{name} failed**: `{error}`")
        lines.append("")
    lines += ["## Durability and client of each system", ""]
    lines += [
        "| system | durability | load generator | client alone measures |",
        "|---|---|---|---|",
    ]
    first_size = f"{cfg['sizes'][0]}B"
    for name, entry in systems.items():
        what = entry["results"][first_size]["client_alone"]["what"]
        lines.append(f"| {name} | {entry['durability']} | {entry['client']} | {what} |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    systems: dict[str, Any] = results["systems"]
    names = list(systems)
    sizes = [f"{s}B" for s in cfg["sizes"]]
    fig, axes = plt.subplots(2, len(sizes), figsize=(6.5 * len(sizes), 8), squeeze=False)
    width = 0.8 / max(1, len(names))
    for col, size in enumerate(sizes):
        top, bottom = axes[0][col], axes[1][col]
        groups = ["produce", "consume"]
        for i, name in enumerate(names):
            cell = systems[name]["results"][size]
            values = [cell[g]["records_per_s"]["median"] for g in groups]
            xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
            top.bar(xs, values, width, label=name)
        top.set_xticks(range(len(groups)), [f"{g} records/s" for g in groups])
        top.set_yscale("log")
        top.set_title(f"{size} records: throughput (higher is better)")
        top.legend(fontsize=8)
        labels = [f"p99 @ {r:,}/s" for r in cfg["rates"]] + [f"p50 @ {r:,}/s" for r in cfg["rates"]]
        keys = [(r, "p99") for r in cfg["rates"]] + [(r, "p50") for r in cfg["rates"]]
        for i, name in enumerate(names):
            cell = systems[name]["results"][size]
            if any(f"latency_{r}" not in cell for r, _ in keys):
                continue  # a throughput-only row (the secured ones)
            values = [cell[f"latency_{r}"]["latency_ms"][q] for r, q in keys]
            xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(keys))]
            bars = bottom.bar(xs, values, width, label=name)
            for bar, (r, _) in zip(bars, keys, strict=True):
                if not cell[f"latency_{r}"]["sustained"]:
                    bar.set_hatch("//")
        bottom.set_xticks(range(len(keys)), labels, fontsize=8)
        bottom.set_yscale("log")
        bottom.set_ylabel("ms")
        bottom.set_title(
            f"{size} records: end-to-end latency (lower is better; hatched: rate not sustained)"
        )
        bottom.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
