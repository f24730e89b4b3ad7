"""Mosquitto's half of SPEC 3: credentials and ACLs installed through its dynamic-security plugin.

Speaks the plugin's control API directly over MQTT (what `mosquitto_ctrl` does), in batches, so
provisioning thousands of devices is a few round trips. Each device gets its own client and role:
publish its own `birth`/`telemetry`/`status`, subscribe to its own `orders`, nothing else.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from ..protocol import DEFAULT_TOPICS, DEVICE_PUBLISHES, DeviceSecret, Topics
from .target import MqttTarget, new_client

__all__ = ["DynsecError", "MosquittoDynsec"]

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
SERVICE_ROLE = "replenish-service"
_BATCH = 400  # commands per control message: a few hundred devices a round trip
_GONE = ("not found",)  # deleting what is not there is fine when (re)provisioning


class DynsecError(RuntimeError):
    """The dynamic-security plugin refused a command."""


def _device_role(device_id: str) -> str:
    return f"device-{device_id}"


def _chunks(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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
        """Send commands in batches; returns their responses or raises on the first real error."""
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
            # Every admin connection sees every response: a per-run prefix keeps concurrent runs apart.
            run = uuid.uuid4().hex[:12]
            tagged = [{**cmd, "correlationData": f"{run}-{i}"} for i, cmd in enumerate(commands)]
            for batch in _chunks(tagged, _BATCH):
                client.publish(CONTROL, json.dumps({"commands": list(batch)}), qos=1)
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
