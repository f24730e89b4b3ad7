"""The embedded broker's half of SPEC 3: per-device credentials and ACLs as amqtt plugins.

`EmbeddedAccess` keeps device passwords hashed in the gateway's database (so a restart keeps
them) and the service account's in memory; the two plugins ask it on every connect, publish,
subscribe and delivery, with the same rules Mosquitto's dynamic security gets (`gateway.protocol.access`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amqtt.contexts import Action as AmqttAction
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..clock import Clock
from ..protocol import DEFAULT_TOPICS, DeviceSecret, Topics, device_may, hash_secret, is_service_name, service_may, verify_secret
from ..storage import GwCredential
from .embedded_limits import LimitedBroker

__all__ = ["DeviceAuthPlugin", "DeviceTopicPlugin", "EmbeddedAccess", "ScopedRetainBroker", "SnapshotDict"]

log = logging.getLogger(__name__)


class EmbeddedAccess:
    """Credentials the embedded broker accepts; a `BrokerAccess` for provisioning."""

    def __init__(self, engine: Engine, clock: Clock, topics: Topics = DEFAULT_TOPICS) -> None:
        self.engine = engine
        self.clock = clock
        self.topics = topics
        self._service: dict[str, str] = {}
        self._lock = threading.Lock()

    def grant_service(self, username: str, password: str) -> None:
        """Accept the service account (kept in memory: the service re-creates it at each start)."""
        with self._lock:
            self._service[username] = hash_secret(password)

    def grant_devices(self, devices: list[DeviceSecret]) -> None:
        """Store each device's password hash, replacing an earlier one."""
        now: datetime = self.clock.now()
        with Session(self.engine) as s:
            for d in devices:
                if d.device_id in self._service:
                    raise ValueError(f"{d.device_id!r} is the service account's name")
                cred = s.get(GwCredential, d.device_id) or GwCredential(username=d.device_id, secret_hash="", created_at=now)
                cred.secret_hash, cred.created_at = hash_secret(d.password), now
                s.add(cred)
            s.commit()

    def revoke_device(self, device_id: str) -> None:
        """Forget a device's credentials."""
        with Session(self.engine) as s:
            cred = s.get(GwCredential, device_id)
            if cred is not None:
                s.delete(cred)
                s.commit()

    def is_service(self, username: str | None) -> bool:
        """Whether a username is the service account."""
        return username is not None and username in self._service

    def authenticate(self, username: str | None, password: str | None) -> bool:
        """Whether these credentials belong to the service account or a provisioned device."""
        if not username or password is None:
            return False
        stored = self._service.get(username)
        if stored is None:
            with Session(self.engine) as s:
                cred = s.exec(select(GwCredential).where(GwCredential.username == username)).first()
            stored = cred.secret_hash if cred else None
        return stored is not None and verify_secret(password, stored)

    def may(self, username: str | None, action: str, topic: str) -> bool:
        """The ACL: the service account reads devices and writes orders; a device only its own topics."""
        if username is None:
            return False
        if self.is_service(username):
            return service_may(action, topic, self.topics)  # type: ignore[arg-type]
        return device_may(username, action, topic, self.topics)  # type: ignore[arg-type]


class DeviceAuthPlugin(BaseAuthPlugin):
    """amqtt authentication: no anonymous clients, and no last will on another device's topic."""

    @dataclass
    class Config:
        """The plugin's configuration: the access authority."""

        access: Any = None

    async def authenticate(self, *, session: MqttSession) -> bool | None:
        """Accept a client whose password matches and whose will (if any) it may publish."""
        access: EmbeddedAccess = self.config.access
        if not access.authenticate(session.username, session.password):
            log.warning("embedded broker refused client %r (user %r): bad credentials", session.client_id, session.username)
            return False
        if not access.is_service(session.username) and is_service_name(session.username or ""):
            log.warning("embedded broker refused %r: the name is reserved for the service", session.username)
            return False
        if not access.is_service(session.username) and session.client_id != session.username:
            # As in Mosquitto (dynamic security's clientid): a device connects only as itself, so it
            # cannot take over another client's session, such as the gateway's persistent one.
            log.warning("embedded broker refused device %r: client id %r is not its own", session.username, session.client_id)
            return False
        if session.will_flag and not access.may(session.username, "publish", session.will_topic or ""):
            log.warning("embedded broker refused client %r: last will on a topic it may not publish", session.client_id)
            return False
        return True


class DeviceTopicPlugin(BaseTopicPlugin):
    """amqtt topic ACL: the rules of `gateway.protocol.access` for publish, subscribe and delivery."""

    @dataclass
    class Config:
        """The plugin's configuration: the access authority."""

        access: Any = None

    async def topic_filtering(self, *, session: MqttSession | None = None, topic: str | None = None, action: AmqttAction | None = None) -> bool | None:
        """Allow what the access rules allow this session's user."""
        if session is None or topic is None or action is None:
            return False
        allowed = self.config.access.may(session.username, str(action), topic)
        if not allowed and action != AmqttAction.RECEIVE:
            log.warning("embedded broker denied %s %s to %r", action, topic, session.username)
        return bool(allowed)


class SnapshotDict(dict[str, Any]):
    """A dict whose iteration walks a copy of its keys or items, so that adding or removing keys meanwhile is harmless."""

    def __iter__(self) -> Any:
        return iter(list(super().keys()))

    def items(self) -> Any:  # a list, not a live view
        return list(super().items())


class ScopedRetainBroker(LimitedBroker):
    """amqtt's broker, with Mosquitto's limits (`LimitedBroker`), and three holes closed that tests/service found in amqtt 0.12.

    - It replays retained messages to a (re)connecting client for every subscription in the
      broker, its own or not, and without the topic ACL: device A would read B's retained
      `orders`. Here a replay needs the client's own subscription to the filter, and each
      retained topic passes the RECEIVE check like any live message.
    - A CONNECT deletes (clean session) or takes over the existing session of its client id
      before the password is checked, and even a refused client's session replaces it: anyone
      reaching the port could erase the gateway's persistent session and the readings queued in
      it. Here a refused client is answered and dropped before any session is touched.
    - It walks its subscriptions dict while awaiting the ACL check of each subscriber, so a client
      subscribing meanwhile (a fleet coming online) raised "dictionary changed size during
      iteration" and the message being broadcast, a birth or a reading, reached nobody (seen in
      `make demo`). Here the subscriptions dict iterates over a copy.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = SnapshotDict(self._subscriptions)

    async def _handle_client_session(self, reader: Any, writer: Any, client_session: MqttSession, handler: Any, server: Any, listener_name: str) -> None:
        if not await self._authenticate(client_session, self.listeners_config[listener_name]):
            stranger = MqttSession()  # the CONNACK goes out on a session of its own, registered nowhere
            stranger.client_id = client_session.client_id
            handler.attach(stranger, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            return
        await super()._handle_client_session(reader, writer, client_session, handler, server, listener_name)

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str, remote_port: int) -> Any:
        doomed: list[str] = []
        delete_now = self._delete_session

        async def defer(client_id: str) -> None:
            doomed.append(client_id)

        self._delete_session = defer  # type: ignore[method-assign]
        try:
            handler, session = await super()._initialize_client_session(reader, writer, remote_address, remote_port)
        finally:
            self._delete_session = delete_now  # type: ignore[method-assign]
        if doomed and await self._authenticate(session, None):  # type: ignore[arg-type]
            for client_id in doomed:
                await delete_now(client_id)
        return handler, session

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: MqttSession) -> None:
        topic_filter, qos = subscription
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(s.client_id == session.client_id for s, _ in subscribers):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, AmqttAction.RECEIVE):
                await handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)
