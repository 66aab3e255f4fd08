"""Delayed sends on Redis: a sorted set per topic, and a scheduler that moves due entries.

    send_delayed --ZADD--> shoal:delayed:<topic>   (score = due time, ms, Redis server clock)
                           shoal:delayed-topics    (member = topic, score = its earliest due)
    scheduler ---script: ZRANGE BYSCORE -inf now LIMIT, XADD each, ZREM each---> stream <topic>

Due times come from the server's ``TIME``, read inside the scripts, never from the client: every
app instance then schedules and moves on one clock, so a skewed host neither moves another's
entries early nor leaves them late. Both scripts write only after reading ``TIME``, which Redis 7
allows because it replicates and persists a script's effects, not the script.

Moving is one script per topic, and Redis runs a script alone: each entry is added to the stream
and removed from the set with nothing in between, so schedulers of several instances never move
an entry twice, and a crash of the client loses nothing. The AOF holds a script's effects as one
MULTI/EXEC, so a server crash keeps both writes or neither. Only the reply can be lost: the
scheduler then calls again and finds the entry gone.

A member is unique even for identical records, and equal due times keep the order of sending::

    +----------------------------+--------------------------------------------------------+
    | sequence (16 hex digits)   | fields: per field u32 name len, name, u32 len, value   |
    +----------------------------+--------------------------------------------------------+

The sequence is ``INCR shoal:delayed-seq``; the fields are exactly those ``send`` gives XADD.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from shoal.app.transports.background import BackgroundTask

log = logging.getLogger("shoal.app.redis")

KEY_PREFIX = "shoal:delayed:"
TOPICS_KEY = "shoal:delayed-topics"
"""Which topics have delayed entries, scored by their earliest due time, so a scheduler that
starts after a restart finds them without SCAN. Its score never exceeds the set's earliest."""
SEQUENCE_KEY = "shoal:delayed-seq"
MOVE_BATCH_ENTRIES = 100
"""Entries one script call moves: Redis serves nobody else while a script runs, so one call
stays short (about a millisecond) and a backlog is moved in several."""
DUE_TOPICS_MAX = 100
"""Topics one scheduler pass looks at; more due ones are taken on the next, immediate, pass."""
POLL_INTERVAL_MS_MAX = 1_000
"""The longest a scheduler sleeps: an entry another instance scheduled earlier than anything
this one knows of is moved at most this late. One cheap script call a second per instance."""
ERROR_BACKOFF_MS = 1_000
"""After a pass failed (the server is down or restarting), wait this long, then retry."""
U32 = struct.Struct(">I")

# KEYS[1] the topic's set, KEYS[2] the topics index, KEYS[3] the sequence.
# ARGV[1] topic, ARGV[2] delay ms, ARGV[3] the packed fields. Returns the due time.
_SCHEDULE = """
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], due, string.format('%016x', seq) .. ARGV[3])
redis.call('ZADD', KEYS[2], 'LT', due, ARGV[1])
return due
"""

# KEYS[1] the topics index. ARGV[1] how many topics. Returns {now ms, topic, score, ...} of the
# topics with the earliest due entries, due or not: the first one not due says how long to sleep.
_EARLIEST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #rows do out[#out + 1] = rows[i] end
return out
"""

# KEYS[1] the topic's set, KEYS[2] the stream, KEYS[3] the topics index.
# ARGV[1] topic, ARGV[2] batch size, ARGV[3] trimming: '' | 'MAXLEN' | 'MINID', ARGV[4] its N.
# Returns {entries moved, ms until the topic's next entry is due, or -1 when none is left}.
# Each entry is added and removed before the next is touched: a script is not rolled back when
# a command fails, and this order leaves nothing moved but still in the set.
# A member that does not decode (not written by shoal) is moved as the field
# shoal.delayed-member, so it reaches the stream as a foreign entry and blocks nothing.
_MOVE_DUE = """
local function fields_of(member)
  local out = {}
  local pos = 17
  while pos <= #member do
    for _ = 1, 2 do
      if pos + 3 > #member then return nil end
      local size = struct.unpack('>I4', member, pos)
      pos = pos + 4
      if pos + size - 1 > #member then return nil end
      out[#out + 1] = string.sub(member, pos, pos + size - 1)
      pos = pos + size
    end
  end
  if #out == 0 then return nil end
  return out
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local trim = {}
if ARGV[3] == 'MAXLEN' then
  trim = {'MAXLEN', '~', ARGV[4]}
elseif ARGV[3] == 'MINID' then
  trim = {'MINID', '~', string.format('%d-0', math.max(0, now - tonumber(ARGV[4])))}
end
for _, member in ipairs(due) do
  local fields = fields_of(member) or {'shoal.delayed-member', member}
  local args = {KEYS[2]}
  for _, a in ipairs(trim) do args[#args + 1] = a end
  args[#args + 1] = '*'
  for _, f in ipairs(fields) do args[#args + 1] = f end
  redis.call('XADD', unpack(args))
  redis.call('ZREM', KEYS[1], member)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {#due, -1}
end
redis.call('ZADD', KEYS[3], first[2], ARGV[1])
return {#due, math.max(0, tonumber(first[2]) - now)}
"""


def delayed_key(topic: str) -> str:
    return KEY_PREFIX + topic


def pack_fields(fields: dict[str, bytes]) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        raw_name = name.encode("utf-8")
        out += U32.pack(len(raw_name)) + raw_name + U32.pack(len(value)) + value
    return bytes(out)


class DelayScheduler:
    """Schedules delayed entries and, in a background task, moves them when due.

    ``trim`` is the XADD trimming of the transport: ``("MAXLEN", n)``, ``("MINID", age_ms)`` or
    ``None``. Every instance runs a scheduler; the scripts make that safe (see the module).
    """

    def __init__(self, client: aioredis.Redis, trim: tuple[str, int] | None) -> None:
        self._trim_args: list[str | int] = list(trim) if trim is not None else ["", 0]
        self._schedule = client.register_script(_SCHEDULE)
        self._earliest = client.register_script(_EARLIEST)
        self._move_due = client.register_script(_MOVE_DUE)
        self._wake = asyncio.Event()
        self._wake_at_ms: float = 0.0
        """Server time of the next planned pass: an earlier local send wakes the task."""
        self._task = BackgroundTask(self._run, "shoal-redis:delay-scheduler")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def schedule(self, topic: str, fields: dict[str, bytes], delay_ms: int) -> None:
        """Returns once the entry is in the sorted set (durable per ``appendfsync``)."""
        due: Any = await self._schedule(
            keys=[delayed_key(topic), TOPICS_KEY, SEQUENCE_KEY],
            args=[topic, delay_ms, pack_fields(fields)],
        )
        if int(due) < self._wake_at_ms:
            self._wake.set()

    async def move_due_once(self) -> int:
        """One pass over the due topics; returns ms until the next pass should run."""
        reply: Any = await self._earliest(keys=[TOPICS_KEY], args=[DUE_TOPICS_MAX])
        now_ms = int(reply[0])
        rows = reply[1:]
        wait_ms = POLL_INTERVAL_MS_MAX
        for i in range(0, len(rows), 2):
            raw, due_ms = rows[i], float(rows[i + 1])
            if due_ms > now_ms:
                wait_ms = min(wait_ms, int(due_ms - now_ms))
                break
            topic = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            try:
                moved, next_in_ms = await self._move_due(
                    keys=[delayed_key(topic), topic, TOPICS_KEY],
                    args=[topic, MOVE_BATCH_ENTRIES, *self._trim_args],
                )
            except ResponseError as exc:
                # This topic's key is not a stream (or its set not a sorted set): its entries
                # wait, untouched, until someone fixes the key; the other topics move on.
                log.warning("cannot move delayed entries to %s: %s", topic, exc)
                continue
            if int(moved) == MOVE_BATCH_ENTRIES:
                wait_ms = 0  # a backlog: keep moving without sleeping
            elif int(next_in_ms) >= 0:
                wait_ms = min(wait_ms, int(next_in_ms))
        else:
            if len(rows) // 2 == DUE_TOPICS_MAX:
                wait_ms = 0  # every listed topic was due; there may be more
        self._wake_at_ms = now_ms + wait_ms
        return wait_ms

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait_ms = await self.move_due_once()
            except RedisError as exc:
                # The server is down: the entries stay where they are (nothing was removed that
                # was not added) and the next pass retries; sends report the outage.
                log.warning("moving delayed entries failed: %s", exc)
                self._wake_at_ms = 0.0
                wait_ms = ERROR_BACKOFF_MS
            if wait_ms > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallowed a cancel
                # that came in the turn a send woke this task, and stop() never returned.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_ms / 1000):
                        await self._wake.wait()
