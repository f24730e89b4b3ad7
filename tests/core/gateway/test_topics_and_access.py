"""Device topics with and without a namespace, the broker ACL rules, and the device-id pattern the schemas repeat; pure."""

from __future__ import annotations

import json

import pytest

from gateway.protocol import DEFAULT_TOPICS, NAME, SENTINELS, DeviceTopic, Topics, device_may, parse_topic, service_may, topic_for, valid_namespace
from gateway.protocol.schemas import SCHEMAS

NS = Topics("site-a/test")
ROOT = "replenish/v1/devices"


def test_without_a_namespace_topics_live_under_the_protocol_prefix() -> None:
    assert DEFAULT_TOPICS == Topics() and DEFAULT_TOPICS.root == ROOT
    assert topic_for("printer-1", "telemetry") == "replenish/v1/devices/printer-1/telemetry"
    assert Topics().topic("printer-1", "orders") == "replenish/v1/devices/printer-1/orders"


def test_a_namespace_prefixes_every_topic() -> None:
    assert NS.root == "site-a/test/replenish/v1/devices"
    assert [NS.topic("printer-1", s) for s in ("birth", "telemetry", "status", "orders")] == [
        "site-a/test/replenish/v1/devices/printer-1/birth",
        "site-a/test/replenish/v1/devices/printer-1/telemetry",
        "site-a/test/replenish/v1/devices/printer-1/status",
        "site-a/test/replenish/v1/devices/printer-1/orders",
    ]


def test_every_is_the_filter_of_one_message_kind_of_all_devices() -> None:
    assert Topics().every("telemetry") == "replenish/v1/devices/+/telemetry"
    assert NS.every("birth") == "site-a/test/replenish/v1/devices/+/birth"


@pytest.mark.parametrize("device_id", ["", "a" * 65, "printer 1", "+", "#", "a/b", "dévice"])
def test_a_topic_for_an_invalid_device_id_raises(device_id: str) -> None:
    with pytest.raises(ValueError):
        Topics().topic(device_id, "telemetry")


def test_parsing_splits_our_topics() -> None:
    assert parse_topic("replenish/v1/devices/printer-1/telemetry") == DeviceTopic("printer-1", "telemetry")
    assert parse_topic("replenish/v1/devices/" + "d" * 64 + "/status") == DeviceTopic("d" * 64, "status")
    assert NS.parse("site-a/test/replenish/v1/devices/fridge_2/orders") == DeviceTopic("fridge_2", "orders")


@pytest.mark.parametrize(
    "topic",
    [
        "replenish/v1/devices/printer-1/levels",  # no such suffix
        "replenish/v1/devices/printer-1",
        "replenish/v1/devices/telemetry",
        "replenish/v1/devices/a/b/telemetry",  # an extra level
        "replenish/v1/devices/+/telemetry",
        "replenish/v1/devices/printer 1/telemetry",
        "replenish/v2/devices/printer-1/telemetry",
        "/replenish/v1/devices/printer-1/telemetry",
        "site-a/test/replenish/v1/devices/printer-1/telemetry",  # a namespaced topic is not ours here
        "",
    ],
)
def test_parsing_without_a_namespace_rejects_what_is_not_ours(topic: str) -> None:
    assert parse_topic(topic) is None


@pytest.mark.parametrize(
    "topic",
    [
        "replenish/v1/devices/printer-1/telemetry",  # no namespace
        "site-b/test/replenish/v1/devices/printer-1/telemetry",  # another namespace
        "site-a/replenish/v1/devices/printer-1/telemetry",  # a part of it
        "x/site-a/test/replenish/v1/devices/printer-1/telemetry",
    ],
)
def test_parsing_under_a_namespace_rejects_other_namespaces_and_none(topic: str) -> None:
    assert NS.parse(topic) is None


@pytest.mark.parametrize("namespace", ["", "t", "t-0a1b2c3d4e5f", "a/b/c/d", "A_b-9", "n" * 64, "/".join(["n" * 64] * 4)])
def test_valid_namespaces(namespace: str) -> None:
    assert valid_namespace(namespace)
    assert Topics(namespace).namespace == namespace


@pytest.mark.parametrize(
    "namespace",
    ["+", "a/+", "#", "a/#", "$SYS", "$share", "a/$b", "a//b", "/a", "a/", "/", "a/b/c/d/e", "n" * 65, "a/" + "n" * 65, "a b", "a.b", "ünï"],
)
def test_invalid_namespaces_are_refused(namespace: str) -> None:
    assert not valid_namespace(namespace)
    with pytest.raises(ValueError, match="topic namespace"):
        Topics(namespace)


# ---- who may do what (gateway.protocol.access) ----


@pytest.mark.parametrize("topics", [Topics(), NS], ids=["no-namespace", "namespace"])
def test_a_device_publishes_only_its_own_birth_telemetry_and_status(topics: Topics) -> None:
    for suffix in ("birth", "telemetry", "status"):
        assert device_may("printer-1", "publish", topics.topic("printer-1", suffix), topics)
        assert not device_may("printer-1", "publish", topics.topic("printer-2", suffix), topics)
    assert not device_may("printer-1", "publish", topics.topic("printer-1", "orders"), topics)
    assert not device_may("printer-1", "publish", topics.every("telemetry"), topics)
    assert not device_may("printer-1", "publish", f"{topics.root}/printer-1/#", topics)
    assert not device_may("printer-1", "publish", f"{topics.root}/printer-1/other", topics)


@pytest.mark.parametrize("topics", [Topics(), NS], ids=["no-namespace", "namespace"])
@pytest.mark.parametrize("action", ["subscribe", "receive"])
def test_a_device_subscribes_to_and_receives_only_its_own_orders_literally(topics: Topics, action: str) -> None:
    own = topics.topic("printer-1", "orders")
    assert device_may("printer-1", action, own, topics)  # type: ignore[arg-type]
    for topic in (
        topics.topic("printer-2", "orders"),
        topics.every("orders"),  # covers its own orders, and everyone else's
        f"{topics.root}/printer-1/+",
        f"{topics.root}/printer-1/#",
        f"{topics.root}/#",
        "#",
        topics.topic("printer-1", "telemetry"),
        f"$share/g/{own}",
    ):
        assert not device_may("printer-1", action, topic, topics), topic  # type: ignore[arg-type]


def test_a_device_under_one_namespace_may_not_use_the_topics_of_another_or_none() -> None:
    assert not device_may("printer-1", "publish", topic_for("printer-1", "telemetry"), NS)
    assert not device_may("printer-1", "subscribe", topic_for("printer-1", "orders"), NS)
    assert not device_may("printer-1", "publish", NS.topic("printer-1", "telemetry"))
    assert not device_may("printer-1", "subscribe", NS.topic("printer-1", "orders"))


@pytest.mark.parametrize("username", ["", "+", "#", "a/b", "x" * 65])
def test_a_username_that_is_no_device_id_may_do_nothing(username: str) -> None:
    for action in ("publish", "subscribe", "receive"):
        assert not device_may(username, action, f"replenish/v1/devices/{username}/orders")  # type: ignore[arg-type]


@pytest.mark.parametrize("topics", [Topics(), NS], ids=["no-namespace", "namespace"])
@pytest.mark.parametrize("action", ["subscribe", "receive"])
def test_the_service_reads_everything_under_the_root_also_through_a_shared_subscription(topics: Topics, action: str) -> None:
    root = topics.root
    shared = (f"$share/workers/{root}/+/telemetry", f"$share/workers/{root}/#")  # filters: subscribed to, never delivered on
    for topic in (f"{root}/#", topics.every("telemetry"), f"{root}/printer-1/birth", *(shared if action == "subscribe" else ())):
        assert service_may(action, topic, topics), topic  # type: ignore[arg-type]
    for topic in ("#", "+/#", "replenish/#", root, f"{root}-x/#", "$SYS/#", "$share/workers/#", "$share/workers", "other/thing"):
        assert not service_may(action, topic, topics), topic  # type: ignore[arg-type]


def test_the_service_does_not_read_another_namespace_or_none() -> None:
    assert not service_may("subscribe", f"{ROOT}/#", NS)
    assert not service_may("subscribe", "site-b/test/replenish/v1/devices/#", NS)
    assert not service_may("subscribe", NS.every("telemetry"))


@pytest.mark.parametrize("topics", [Topics(), NS], ids=["no-namespace", "namespace"])
def test_the_service_publishes_only_concrete_orders_topics_never_wildcards(topics: Topics) -> None:
    root = topics.root
    assert service_may("publish", topics.topic("printer-1", "orders"), topics)
    assert service_may("publish", topics.topic("fridge_2", "orders"), topics)
    for topic in (
        topics.every("orders"),
        f"{root}/#",
        f"{root}/printer-1/#",
        "#",
        topics.topic("printer-1", "telemetry"),  # never a device's own messages: no forged levels
        topics.topic("printer-1", "birth"),
        topics.topic("printer-1", "status"),
        f"{root}/a/b/orders",
        "orders",
    ):
        assert not service_may("publish", topic, topics), topic
    other = Topics() if topics.namespace else NS
    assert not service_may("publish", other.topic("printer-1", "orders"), topics)


def test_the_service_may_not_publish_to_a_shared_subscription_topic() -> None:
    """Shared subscriptions are for subscribing only: Mosquitto's role refuses such a publish, and so does the rule."""
    assert not service_may("publish", "$share/workers/replenish/v1/devices/printer-1/orders")
    assert not service_may("receive", "$share/workers/replenish/v1/devices/printer-1/telemetry")
    assert service_may("subscribe", "$share/workers/replenish/v1/devices/+/telemetry")


# ---- the device-id pattern, defined once (gateway.protocol.values.NAME) ----


def test_the_published_schemas_repeat_the_device_id_pattern_defined_once() -> None:
    patterns = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        device = json.loads(path.read_text()).get("properties", {}).get("device")
        if device is not None:
            patterns[path.stem] = device["pattern"]
    # Every device -> gateway message names its sender; orders go the other way and do not.
    assert sorted(patterns) == ["birth", "status", "telemetry"]
    assert set(patterns.values()) == {"^" + NAME + "$"}


def test_the_published_telemetry_schema_repeats_the_sentinels_defined_once() -> None:
    def enums(node: object) -> list[frozenset[str]]:
        if isinstance(node, dict):
            found = [frozenset(node["enum"])] if "enum" in node else []
            return found + [e for v in node.values() for e in enums(v)]
        if isinstance(node, list):
            return [e for v in node for e in enums(v)]
        return []

    found = enums(json.loads((SCHEMAS / "telemetry.json").read_text()))
    assert found and set(found) == {SENTINELS}, "a level's and an event's sentinels are gateway.protocol.values.SENTINELS"
