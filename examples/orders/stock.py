"""The inventory's stock and reservations, in the SQLite file that also holds the dedup records.

Living in the idempotency store's database is what makes a reservation exactly-once: the
inventory handler writes through ``msg.transaction``, the store's open transaction, so the
stock decrement and the "message processed" row commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Final

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, available INTEGER NOT NULL"
    " CHECK (available >= 0))",
    # Deliberately no unique order id: a duplicate delivery that got past deduplication would
    # show up here as a second row (and a second decrement), not be hidden by a constraint.
    "CREATE TABLE IF NOT EXISTS reservations (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " order_id TEXT NOT NULL, item TEXT NOT NULL, quantity INTEGER NOT NULL)",
)


def seed(path: Path, levels: Mapping[str, int]) -> None:
    """Create the tables and set the stock of items not yet known (a restart keeps levels)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT OR IGNORE INTO stock (item, available) VALUES (?, ?)", levels.items()
        )


def reserve(conn: sqlite3.Connection, order_id: str, item: str, quantity: int) -> bool:
    """Take ``quantity`` of ``item`` inside the caller's open transaction; False if short."""
    taken = conn.execute(
        "UPDATE stock SET available = available - ? WHERE item = ? AND available >= ?",
        (quantity, item, quantity),
    ).rowcount
    if taken != 1:
        return False
    conn.execute(
        "INSERT INTO reservations (order_id, item, quantity) VALUES (?, ?, ?)",
        (order_id, item, quantity),
    )
    return True


def levels(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT item, available FROM stock").fetchall())


def reservations(path: Path) -> list[tuple[str, str, int]]:
    """(order id, item, quantity) of every reservation, oldest first."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT order_id, item, quantity FROM reservations ORDER BY id")
        return [(str(o), str(i), int(q)) for o, i, q in rows.fetchall()]
