"""Mosquitto's half of SPEC 3: credentials and ACLs installed through its dynamic-security plugin.

Speaks the plugin's control API directly over MQTT (what `mosquitto_ctrl` does), many commands a
message, so provisioning a thousand devices is a few dozen round trips. Messages are bounded in
bytes, not commands: the shipped broker disconnects any client, the admin too, that sends a
packet larger than a device's largest (`max_packet_size`, deploy/mosquitto/mosquitto.conf).
Each device gets its own client and role: publish its own `birth`/`telemetry`/`status`,
subscribe to its own `orders`, nothing else.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import paho.mqtt.client as mqtt

from ..protocol import DEFAULT_TOPICS, DEVICE_PUBLISHES, DeviceSecret, Topics
from .target import MqttTarget, new_client

__all__ = ["MESSAGE_BYTES", "DynsecError", "MosquittoDynsec", "control_messages"]

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
SERVICE_ROLE = "replenish-service"
# The JSON of one control message, at most: with its topic and header (36 bytes) well under the
# shipped max_packet_size of 66 KiB, which a device's 64 KiB payload needs. 21 devices a
# message with 64-character ids under a four-level namespace, 64 with ids like sim-00001.
MESSAGE_BYTES = 60 * 1024
_HEAD, _TAIL = b'{"commands":[', b"]}"
_GONE = ("not found",)  # deleting what is not there is fine when (re)provisioning


class DynsecError(RuntimeError):
    """The dynamic-security plugin refused a command."""


def _device_role(device_id: str) -> str:
    return f"device-{device_id}"


def control_messages(commands: Iterable[dict[str, Any]], most: int = MESSAGE_BYTES) -> Iterator[tuple[list[dict[str, Any]], bytes]]:
    """The commands in order, as `{"commands": [...]}` payloads of at most `most` bytes, each as full as fits.

    Yields each message's commands with its payload. Raises ValueError for a command that cannot
    fit alone (ours are at most 2.2 KB: a device's role, five ACLs on the longest topics).
    """
    batch: list[dict[str, Any]] = []
    parts: list[bytes] = []
    size = len(_HEAD) + len(_TAIL)
    for cmd in commands:
        part = json.dumps(cmd, separators=(",", ":")).encode()
        if len(_HEAD) + len(part) + len(_TAIL) > most:
            raise ValueError(f"a dynamic-security {cmd.get('command')} of {len(part)} bytes does not fit in a control message of {most}")
        if batch and size + 1 + len(part) > most:  # 1: the comma before it
            yield batch, _HEAD + b",".join(parts) + _TAIL
            batch, parts, size = [], [], len(_HEAD) + len(_TAIL)
        size += len(part) + (1 if batch else 0)
        batch.append(cmd)
        parts.append(part)
    if batch:
        yield batch, _HEAD + b",".join(parts) + _TAIL


class MosquittoDynsec:
    """A `BrokerAccess` for Mosquitto with the dynamic-security plugin, as its admin user."""

    def __init__(self, admin: MqttTarget, timeout: float = 30.0, topics: Topics = DEFAULT_TOPICS) -> None:
        if not admin.username:
            raise ValueError("the dynamic-security admin URL needs a username and password (mqtt://admin:pw@host:port)")
        self.admin = admin
        self.timeout = timeout
        self.topics = topics

    def grant_service(self, username: str, password: str) -> None:
        """Create or update the service account: read every device topic, publish `orders`."""
        root = self.topics.root
        acls = [
            {"acltype": "subscribePattern", "topic": f"{root}/#", "allow": True},
            {"acltype": "subscribePattern", "topic": f"$share/+/{root}/#", "allow": True},
            {"acltype": "publishClientReceive", "topic": f"{root}/#", "allow": True},
            {"acltype": "publishClientSend", "topic": self.topics.every("orders"), "allow": True},
        ]
        self._run(
            [
                # Nothing is delivered that a role does not allow: devices cannot read each other.
                {"command": "setDefaultACLAccess", "acls": [{"acltype": "publishClientReceive", "allow": False}]},
                {"command": "deleteClient", "username": username},
                {"command": "deleteRole", "rolename": SERVICE_ROLE},
                {"command": "createRole", "rolename": SERVICE_ROLE, "acls": acls},
                {"command": "createClient", "username": username, "password": password, "roles": [{"rolename": SERVICE_ROLE}]},
            ]
        )

    def grant_devices(self, devices: list[DeviceSecret]) -> None:
        """Create or replace each device's client and role."""
        commands: list[dict[str, Any]] = []
        for d in devices:
            own = f"{self.topics.root}/{d.device_id}"
            acls = [{"acltype": "publishClientSend", "topic": f"{own}/{suffix}", "allow": True} for suffix in DEVICE_PUBLISHES]
            acls += [
                {"acltype": "subscribeLiteral", "topic": f"{own}/orders", "allow": True},
                {"acltype": "publishClientReceive", "topic": f"{own}/orders", "allow": True},
            ]
            role = _device_role(d.device_id)
            commands += [
                {"command": "deleteClient", "username": d.device_id},
                {"command": "deleteRole", "rolename": role},
                {"command": "createRole", "rolename": role, "acls": acls},
                # clientid: a device may connect only as itself, so it cannot take over (and end) the
                # session of another client, such as a gateway worker's persistent one.
                {"command": "createClient", "username": d.device_id, "clientid": d.device_id, "password": d.password, "roles": [{"rolename": role}]},
            ]
        self._run(commands)

    def revoke_device(self, device_id: str) -> None:
        """Delete a device's client (its connection is closed) and role."""
        self._run([{"command": "deleteClient", "username": device_id}, {"command": "deleteRole", "rolename": _device_role(device_id)}])

    def _run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send commands, a control message at a time; returns their responses or raises on the first real error."""
        # Every admin connection sees every response: a per-run prefix keeps concurrent runs apart.
        run = uuid.uuid4().hex[:12]
        tagged = [{**cmd, "correlationData": f"{run}-{i}"} for i, cmd in enumerate(commands)]
        messages = list(control_messages(tagged))  # all of them before connecting: none is too large
        client = new_client(self.admin, f"replenish-dynsec-{uuid.uuid4().hex[:8]}")
        responses: dict[str, dict[str, Any]] = {}
        arrived = threading.Condition()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with arrived:
                for r in json.loads(msg.payload).get("responses", []):
                    responses[str(r.get("correlationData"))] = r
                arrived.notify_all()

        subscribed = threading.Event()
        client.on_message = on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(self.admin.host, self.admin.port, keepalive=30)
        client.loop_start()
        try:
            client.subscribe(f"{CONTROL}/response", qos=1)
            if not subscribed.wait(self.timeout):
                raise DynsecError(f"no answer from Mosquitto's dynamic-security plugin at {self.admin.url}")
            for batch, payload in messages:
                client.publish(CONTROL, payload, qos=1)
                wanted = {c["correlationData"] for c in batch}
                with arrived:
                    if not arrived.wait_for(lambda: wanted <= responses.keys(), self.timeout):
                        raise DynsecError(f"the dynamic-security plugin at {self.admin.url} did not answer (is it loaded, and is {self.admin.username!r} its admin?)")
        finally:
            client.disconnect()
            client.loop_stop()
        out = []
        for cmd in tagged:
            r = responses[cmd["correlationData"]]
            error = r.get("error")
            if error and not (cmd["command"].startswith("delete") and any(g in error.lower() for g in _GONE)):
                raise DynsecError(f"{cmd['command']} {cmd.get('username') or cmd.get('rolename') or ''}: {error}")
            out.append(r)
        log.info("dynamic security: %d commands applied at %s", len(commands), self.admin.url)
        return out
