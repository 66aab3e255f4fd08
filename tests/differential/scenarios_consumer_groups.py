"""Differential scenarios of KIP-848 consumer groups (ConsumerGroupHeartbeat on the wire):

- ``heartbeat_errors``: the error code and message of each kind of bad heartbeat (fields a
  join needs, bad epochs, unknown groups and members, static-member conflicts, assignors,
  regexes), and the answers to leaving (epoch -1) and a static member's temporary leave (-2);
- ``uniform_assignment`` / ``range_assignment``: members heartbeat as a well-behaved client
  does (reporting what they own) until the group is stable; the final assignment (per member
  name, for range; as partition counts, for uniform, whose choice among equals is Kafka's hash
  order) and the fact that every partition is owned once;
- ``offsets_and_admin``: OffsetCommit/OffsetFetch v9 member-epoch checks (STALE_MEMBER_EPOCH,
  UNKNOWN_MEMBER_ID, UNSUPPORTED_VERSION below v9; GROUP_ID_NOT_FOUND for a group that is not
  there) and the classic admin APIs on such a group;
- ``describe_group``: ConsumerGroupDescribe of a stable group (a member subscribed by name with
  the range assignor, one by regex), of an unknown and of a classic group; ListGroups v5's type
  filter;
- ``group_configs``: the GROUP config resource (consumer.session.timeout.ms,
  consumer.heartbeat.interval.ms): refusals, described values and synonyms, and the heartbeat
  interval a group's config gives its members.

Epoch numbers in messages are replaced by ``N`` (Kafka 4.4 computes assignments off the
request path, so its epochs may run ahead of shoal's); everything else must be equal,
including why a subscription regex is refused (RE2/J's words).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from tests.differential.scenarios import TIMEOUT_S, Result, create_topic, unique
from tests.server.wire import WireClient

HEARTBEAT = 68
FIND_COORDINATOR = 10
DESCRIBE = 69
VERSION = 1


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GROUP = re.compile(r"\b(cg-errors|cg-offsets|cg-classic|nogroup)-[0-9a-f]{8}\b")


def _numbers(text: str | None) -> str | None:
    """The message with member ids, group ids and numbers (epochs) made generic."""
    if text is None:
        return None
    return re.sub(r"\d+", "N", _GROUP.sub(r"\1", _UUID.sub("ID", text)))


class Member:
    def __init__(self, client: WireClient, group: str, member_id: str, ids: dict[uuid.UUID, str]):
        self.client, self.group, self.member_id, self.ids = client, group, member_id, ids
        self.epoch = 0
        self.owned: dict[str, list[int]] = {}
        self.names = {name: topic_id for topic_id, name in ids.items()}

    def beat(self, **fields: Any) -> Any:
        values: dict[str, Any] = {
            "group_id": self.group,
            "member_id": self.member_id,
            "member_epoch": self.epoch,
            "topic_partitions": [
                {"topic_id": self.names[t], "partitions": ps} for t, ps in self.owned.items()
            ],
            **fields,
        }
        response = self.client.request(HEARTBEAT, VERSION, values)
        if int(response.error_code) == 0:
            self.epoch = int(response.member_epoch)
            if response.assignment is not None:
                self.owned = {
                    self.ids[tp.topic_id]: sorted(int(p) for p in tp.partitions)
                    for tp in response.assignment.topic_partitions
                }
        return response


def _ready(client: WireClient, group: str) -> None:
    """Wait until the coordinator answers (Kafka creates __consumer_offsets on first use)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = client.request(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [group]})
        if int(found.coordinators[0].error_code) == 0:
            probe = client.request(
                HEARTBEAT,
                VERSION,
                {"group_id": group, "member_id": str(uuid.uuid4()), "member_epoch": 1},
            )
            if int(probe.error_code) not in (14, 15, 16):  # loading / not available / not ours
                return
        time.sleep(0.2)
    raise AssertionError("the group coordinator never became available")


def _topic_ids(client: WireClient, topics: list[str]) -> dict[uuid.UUID, str]:
    """The topics' ids, once Metadata knows them all (Kafka's metadata lags a creation)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        listed = client.metadata(topics, auto_create=False).topics
        if all(int(t.error_code) == 0 for t in listed) or time.monotonic() > deadline:
            return {t.topic_id: t.name for t in listed}
        time.sleep(0.1)


def _answer(response: Any, *, message: bool = True) -> dict[str, Any]:
    return {
        "error": int(response.error_code),
        "message": _numbers(response.error_message) if message else None,
    }


REGEXES: Final = {
    "unclosed_group": "(",
    "unopened_group": "a)",
    "unclosed_class": "[a",
    "nothing_to_repeat": "*a",
    "lookahead": "(?=a)b",
    "backreference": "(a)\\1",
    "possessive": "a++",
    "bad_range": "[z-a]",
    "posix_class": "[[:alpha:]]+",
    "unicode_class": "\\p{L}+",
    "quoted": "\\Qa.b\\E",
    "named_group": "(?<name>a)",
    "bounded": "a{2,}",
}
"""Patterns whose RE2/J reading differs from Python's re: each accepted or refused (and why)
as Kafka does."""


def heartbeat_errors(bootstrap: str) -> Result:
    topic = create_topic(bootstrap, 2)
    group = unique("cg-errors")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _ready(client, group)
        ids = _topic_ids(client, [topic])
        join = {
            "member_epoch": 0,
            "rebalance_timeout": 30000,
            "subscribed_topic_names": [topic],
            "topic_partitions": [],
        }

        def send(name: str, *, message: bool = True, **fields: Any) -> None:
            values = {"group_id": group, "member_id": str(uuid.uuid4()), **join, **fields}
            out[name] = _answer(client.request(HEARTBEAT, VERSION, values), message=message)

        send("empty_member_id", member_id="")
        send("no_rebalance_timeout", rebalance_timeout=-1)
        send("no_subscription", subscribed_topic_names=None)
        send("owned_on_join", topic_partitions=[{"topic_id": next(iter(ids)), "partitions": [0]}])
        send("null_owned_on_join", topic_partitions=None)
        send("bad_epoch", member_epoch=-3)
        send("empty_instance_id", instance_id="")
        send("static_leave_without_instance", member_epoch=-2)
        send("unknown_assignor", server_assignor="sticky")
        for name, regex in REGEXES.items():
            send(f"regex_{name}", subscribed_topic_names=None, subscribed_topic_regex=regex)
        send("unknown_group_heartbeat", group_id=unique("nogroup"), member_epoch=3)
        send("unknown_group_leave", group_id=unique("nogroup"), member_epoch=-1)

        member = Member(client, group, str(uuid.uuid4()), ids)
        joined = member.beat(**join)
        out["join"] = {
            "error": int(joined.error_code),
            "echoes_member_id": joined.member_id == member.member_id,
        }
        out["greater_epoch"] = _answer(member.beat(member_epoch=member.epoch + 5))
        send("unknown_member", member_epoch=1)
        left = member.beat(member_epoch=-1)
        out["leave"] = {
            **_answer(left),
            "epoch": int(left.member_epoch),
            "interval": int(left.heartbeat_interval.total_seconds() * 1000),
        }
        out["after_leave"] = _answer(member.beat(member_epoch=1))

        static = Member(client, group, str(uuid.uuid4()), ids)
        static.beat(**join, instance_id="inst")
        send("instance_in_use", instance_id="inst")
        # Heartbeat until the static member owns partitions (Kafka assigns off the request
        # path), so that what it keeps across its temporary leave is something.
        deadline = time.monotonic() + TIMEOUT_S
        while not static.owned and time.monotonic() < deadline:
            static.beat(instance_id="inst")
            time.sleep(0.1)
        paused = static.beat(member_epoch=-2, instance_id="inst")
        out["static_leave"] = {**_answer(paused), "epoch": int(paused.member_epoch)}
        successor = Member(client, group, str(uuid.uuid4()), ids)
        back = successor.beat(**join, instance_id="inst")
        out["static_rejoin"] = {
            "error": int(back.error_code),
            "keeps_partitions": bool(back.assignment and back.assignment.topic_partitions),
        }
        out["replaced_static_member"] = _answer(static.beat(member_epoch=1, instance_id="inst"))
    return out


def _stable_assignment(
    bootstrap: str, assignor: str, topics: dict[str, int], names: list[str]
) -> Result:
    created = [create_topic(bootstrap, n) for n in topics.values()]
    group = unique(f"cg-{assignor}")
    with WireClient(bootstrap) as client:
        _ready(client, group)
        ids = _topic_ids(client, created)
        members = [Member(client, group, f"{name}-{uuid.uuid4().hex[:6]}", ids) for name in names]
        for m in members:
            m.beat(
                member_epoch=0,
                rebalance_timeout=30000,
                subscribed_topic_names=created,
                server_assignor=assignor,
                topic_partitions=[],
            )
        wanted = {(t, p) for t, n in zip(created, topics.values(), strict=True) for p in range(n)}
        deadline = time.monotonic() + TIMEOUT_S
        owned: list[tuple[str, int]] = []
        while time.monotonic() < deadline:
            for m in members:
                m.beat()
            owned = [(t, p) for m in members for t, ps in m.owned.items() for p in ps]
            described = client.request(DESCRIBE, VERSION, {"group_ids": [group]}).groups[0]
            # Stable: the target is computed for the group epoch and every member reached it.
            if described.group_state == "Stable" and sorted(owned) == sorted(wanted):
                break
            time.sleep(0.1)
        index = {t: i for i, t in enumerate(created)}
        return {
            "every_partition_once": sorted(owned) == sorted(wanted),
            "counts": sorted(sum(len(ps) for ps in m.owned.values()) for m in members),
            "by_member": {
                name: sorted((index[t], p) for t, ps in m.owned.items() for p in ps)
                for name, m in zip(names, members, strict=True)
            },
        }


def uniform_assignment(bootstrap: str) -> Result:
    result = _stable_assignment(bootstrap, "uniform", {"a": 7, "b": 3}, ["m1", "m2", "m3"])
    result.pop("by_member")  # which of equals gets what is each broker's own order
    return result


def range_assignment(bootstrap: str) -> Result:
    return _stable_assignment(bootstrap, "range", {"a": 5, "b": 5}, ["m1", "m2"])


DESCRIBE_CONFIGS = 32
INCREMENTAL_ALTER_CONFIGS = 44
GROUP_RESOURCE = 32
CONSUMER_GROUP_CONFIGS = ("consumer.heartbeat.interval.ms", "consumer.session.timeout.ms")


def group_configs(bootstrap: str) -> Result:
    """The GROUP config resource: alters Kafka refuses (and why), the consumer.* entries as
    described (value, source, synonyms), and a heartbeat interval a group config sets."""
    topic = create_topic(bootstrap, 1)
    group = unique("cg-configs")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _ready(client, group)

        def alter(name: str, key: str, op: int, value: str | None) -> dict[str, Any]:
            resource = {
                "resource_type": GROUP_RESOURCE,
                "resource_name": name,
                "configs": [{"name": key, "config_operation": op, "value": value}],
            }
            answer = client.request(
                INCREMENTAL_ALTER_CONFIGS, 1, {"resources": [resource], "validate_only": False}
            ).responses[0]
            return {"error": int(answer.error_code), "message": answer.error_message or None}

        def describe(name: str) -> Any:
            resource = {
                "resource_type": GROUP_RESOURCE,
                "resource_name": name,
                "configuration_keys": list(CONSUMER_GROUP_CONFIGS),
            }
            answer = client.request(
                DESCRIBE_CONFIGS,
                4,
                {"resources": [resource], "include_synonyms": True, "include_documentation": False},
            ).results[0]
            return {
                "error": int(answer.error_code),
                "configs": sorted(
                    (
                        e.name,
                        e.value,
                        int(e.config_source),
                        int(e.config_type),
                        [(y.name, y.value, int(y.source)) for y in e.synonyms],
                    )
                    for e in answer.configs
                ),
            }

        out["defaults"] = describe(group)
        out["empty_name"] = describe("")["error"]
        out["too_short"] = alter(group, "consumer.session.timeout.ms", 0, "5")
        out["too_long"] = alter(group, "consumer.heartbeat.interval.ms", 0, "100000")
        out["unknown"] = alter(group, "bogus.config", 0, "1")
        out["append"] = alter(group, "consumer.session.timeout.ms", 2, "1")
        out["default_resource"] = alter("", "consumer.session.timeout.ms", 0, "50000")
        out["set_session"] = alter(group, "consumer.session.timeout.ms", 0, "50000")
        out["set_interval"] = alter(group, "consumer.heartbeat.interval.ms", 0, "6000")
        out["overridden"] = describe(group)
        ids = _topic_ids(client, [topic])
        joined = Member(client, group, str(uuid.uuid4()), ids).beat(
            member_epoch=0,
            rebalance_timeout=30000,
            subscribed_topic_names=[topic],
            topic_partitions=[],
        )
        out["heartbeat_interval_ms"] = int(joined.heartbeat_interval.total_seconds() * 1000)
        out["delete"] = alter(group, "consumer.session.timeout.ms", 1, None)
        out["after_delete"] = describe(group)

        def listed() -> bool:
            answer = client.request(74, 1, {"resource_types": [GROUP_RESOURCE]})
            return group in {r.resource_name for r in answer.config_resources}

        out["listed_with_an_override"] = listed()
        # No override left: the group is no config resource any more (and other scenarios
        # that list config resources see none of this one's).
        out["delete_last"] = alter(group, "consumer.heartbeat.interval.ms", 1, None)
        out["listed_without"] = listed()
    return out


def _commit(
    client: WireClient, group: str, topic: str, epoch: int, member: str, version: int
) -> int:
    answer = client.request(
        8,
        version,
        {
            "group_id": group,
            "generation_id_or_member_epoch": epoch,
            "member_id": member,
            "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 1}]}
            ],
        },
    )
    return int(answer.topics[0].partitions[0].error_code)


def _fetch(client: WireClient, group: str, epoch: int, member: str | None) -> Any:
    values = {
        "groups": [{"group_id": group, "member_id": member, "member_epoch": epoch, "topics": None}],
        "require_stable": False,
    }
    answer = client.request(9, 9, values).groups[0]
    return {
        "error": int(answer.error_code),
        "offsets": sorted(
            (p.partition_index, p.committed_offset) for t in answer.topics for p in t.partitions
        ),
    }


def offsets_and_admin(bootstrap: str) -> Result:
    """OffsetCommit/OffsetFetch v9+ member-epoch checks on a consumer group, and how the
    classic admin APIs (OffsetDelete, DescribeGroups, DeleteGroups) answer for one."""
    topic = create_topic(bootstrap, 2)
    group = unique("cg-offsets")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _ready(client, group)
        member = Member(client, group, str(uuid.uuid4()), _topic_ids(client, [topic]))
        member.beat(
            member_epoch=0, rebalance_timeout=30000, subscribed_topic_names=[topic],
            topic_partitions=[],
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while not member.owned and time.monotonic() < deadline:
            member.beat()
            time.sleep(0.1)
        epoch, mid = member.epoch, member.member_id
        out["commit"] = _commit(client, group, topic, epoch, mid, 9)
        out["commit_stale"] = _commit(client, group, topic, epoch - 1, mid, 9)
        out["commit_ahead"] = _commit(client, group, topic, epoch + 1, mid, 9)
        out["commit_unknown_member"] = _commit(client, group, topic, epoch, "nobody", 9)
        out["commit_without_member"] = _commit(client, group, topic, -1, "", 9)
        out["commit_v8"] = _commit(client, group, topic, epoch, mid, 8)
        # A group that does not exist (a member the coordinator forgot): v9+ says so, older
        # versions keep ILLEGAL_GENERATION; without a generation it is a simple group's commit.
        nowhere = unique("cg-nowhere")
        for version in (8, 9):
            out[f"commit_no_group_v{version}"] = _commit(client, nowhere, topic, 3, mid, version)
        out["commit_no_group_simple"] = _commit(client, unique("cg-simple"), topic, -1, "", 9)
        out["fetch"] = _fetch(client, group, epoch, mid)
        out["fetch_stale"] = _fetch(client, group, epoch - 1, mid)
        out["fetch_unknown_member"] = _fetch(client, group, epoch, "nobody")
        out["fetch_without_member"] = _fetch(client, group, -1, None)
        deleted = client.request(
            47,
            0,
            {
                "group_id": group,
                "topics": [{"name": topic, "partitions": [{"partition_index": 0}]}],
            },
        )
        out["offset_delete"] = [
            int(deleted.error_code),
            int(deleted.topics[0].partitions[0].error_code),
        ]
        for version in (5, 6):
            g = client.request(
                15, version, {"groups": [group], "include_authorized_operations": False}
            ).groups[0]
            out[f"describe_groups_v{version}"] = {
                "error": int(g.error_code),
                "message": _numbers(getattr(g, "error_message", None)),
                "state": g.group_state,
            }
        dropped = client.request(42, 2, {"groups_names": [group]})
        out["delete_groups"] = int(dropped.results[0].error_code)
        # KIP-1251: a second member takes some partitions; the first one's older epoch still
        # commits the partitions it kept, not the ones it gave up, and not both at once.
        other = Member(client, group, str(uuid.uuid4()), member.ids)
        other.beat(
            member_epoch=0, rebalance_timeout=30000, subscribed_topic_names=[topic],
            topic_partitions=[],
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            member.beat()
            other.beat()
            state = client.request(DESCRIBE, VERSION, {"group_ids": [group]}).groups[0]
            if state.group_state == "Stable" and member.owned and other.owned:
                break
            time.sleep(0.1)
        kept, lost = member.owned[topic][0], other.owned[topic][0]

        def commit_at(epoch: int, partitions: list[int]) -> list[int]:
            values = {
                "group_id": group,
                "generation_id_or_member_epoch": epoch,
                "member_id": mid,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {"partition_index": p, "committed_offset": 2} for p in partitions
                        ],
                    }
                ],
            }
            answer = client.request(8, 9, values)
            return [int(p.error_code) for p in answer.topics[0].partitions]

        out["moved_on"] = member.epoch > epoch
        out["older_epoch_kept_partition"] = commit_at(epoch, [kept])
        out["older_epoch_given_up_partition"] = commit_at(epoch, [lost])
        out["older_epoch_both"] = commit_at(epoch, [kept, lost])
    return out


def _anonymous(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list | tuple):
        return [_anonymous(v, names) for v in value]
    return value


def describe_group(bootstrap: str) -> Result:
    """ConsumerGroupDescribe of a stable one-member group (names and regex), an unknown group
    and a classic group; ListGroups v5 with its type filter."""
    topic = create_topic(bootstrap, 2)
    group, classic = unique("cg-describe"), unique("cg-classic")
    out: dict[str, Any] = {}
    with WireClient(bootstrap) as client:
        _ready(client, group)
        ids = _topic_ids(client, [topic])
        # Member ids in a known order: range hands out partitions in member-id order.
        named = Member(client, group, f"a-{uuid.uuid4()}", ids)
        named.beat(
            member_epoch=0, rebalance_timeout=30000, subscribed_topic_names=[topic],
            topic_partitions=[], server_assignor="range",
        )  # fmt: skip
        regex = Member(client, group, f"b-{uuid.uuid4()}", ids)
        regex.beat(
            member_epoch=0, rebalance_timeout=30000, subscribed_topic_regex=re.escape(topic),
            topic_partitions=[],
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        described: Any = None
        while time.monotonic() < deadline:
            named.beat()
            regex.beat()
            described = client.request(
                DESCRIBE, VERSION, {"group_ids": [group], "include_authorized_operations": True}
            ).groups[0]
            if described.group_state == "Stable" and named.owned and regex.owned:
                break
            time.sleep(0.1)
        members = sorted(
            (
                m.member_id == named.member_id,
                m.instance_id,
                m.rack_id,
                m.member_epoch == described.assignment_epoch,
                m.client_id,
                m.client_host,
                list(m.subscribed_topic_names),
                m.subscribed_topic_regex,
                sorted(
                    (tp.topic_name, sorted(tp.partitions)) for tp in m.assignment.topic_partitions
                ),
                sorted(
                    (tp.topic_name, sorted(tp.partitions))
                    for tp in m.target_assignment.topic_partitions
                ),
                int(m.member_type),
            )
            for m in described.members
        )
        # Topic names are random per run: name them by role.
        members = [
            tuple(
                _anonymous(value, {topic: "TOPIC", re.escape(topic): "TOPIC-REGEX"}) for value in m
            )
            for m in members
        ]
        out["group"] = {
            "error": int(described.error_code),
            "state": described.group_state,
            "assignor": described.assignor_name,
            "epochs_agree": described.group_epoch == described.assignment_epoch,
            "authorized_operations": int(described.authorized_operations),
            "members": members,
        }
        # A classic group: one that only holds committed offsets (a "simple" commit).
        assert _commit(client, classic, topic, -1, "", 9) == 0
        others = client.request(
            DESCRIBE, VERSION, {"group_ids": [unique("nogroup"), classic]}
        ).groups
        out["others"] = [
            {"error": int(g.error_code), "message": _numbers(g.error_message)} for g in others
        ]
        for types in ([], ["consumer"], ["classic"]):
            listed = client.request(16, 5, {"states_filter": [], "types_filter": types}).groups
            out[f"list_{'_'.join(types) or 'all'}"] = sorted(
                (g.group_type, g.protocol_type, g.group_state)
                for g in listed
                if g.group_id == group
            )
    return out


SCENARIOS: dict[str, Callable[[str], Result]] = {
    "describe_group": describe_group,
    "offsets_and_admin": offsets_and_admin,
    "group_configs": group_configs,
    "heartbeat_errors": heartbeat_errors,
    "uniform_assignment": uniform_assignment,
    "range_assignment": range_assignment,
}
