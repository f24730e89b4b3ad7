"""One selector loop that drives thousands of paho clients from one thread (paho's external-loop API).

Paho's `loop_start` costs a thread and a socket pair per client; with the socket callbacks and
`loop_read` / `loop_write` / `loop_misc` a client costs one socket and no thread. Writes are
batched: a client that has something to send is written to once per loop turn, and registered
for writability only if the kernel buffer was full.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["ClientLoop"]

log = logging.getLogger(__name__)

MISC_EVERY_S = 1.0  # keepalive pings are due at most once a second per client
MAX_WAIT_S = 0.5


class ClientLoop:
    """Runs paho clients, timers and thread-safe calls on one thread."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._order = itertools.count()
        self._calls: deque[Callable[[], Any]] = deque()
        self._dirty: set[mqtt.Client] = set()
        self._writing: set[mqtt.Client] = set()
        self._open: set[mqtt.Client] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_misc = 0.0

    # -- clients ---------------------------------------------------------------------------

    def attach(self, client: mqtt.Client) -> None:
        """Let this loop drive `client` (before it connects)."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write

    def _opened(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self.sel.register(sock, selectors.EVENT_READ, client)
        self._open.add(client)

    def _closed(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        self._open.discard(client)
        self._writing.discard(client)
        self._dirty.discard(client)

    def _want_write(self, client: mqtt.Client, _u: Any, _sock: Any) -> None:
        self._dirty.add(client)

    def _no_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        if client in self._writing:
            self._writing.discard(client)
            try:
                self.sel.modify(sock, selectors.EVENT_READ, client)
            except (KeyError, ValueError):
                pass

    def drop(self, client: mqtt.Client) -> None:
        """Cut `client`'s connection without a DISCONNECT packet: the broker publishes its last will."""
        sock = client.socket()
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        except OSError:
            pass
        client.loop_read()  # sees the end of the stream: paho closes the socket and reports the disconnect

    @property
    def open_clients(self) -> int:
        """How many clients have a socket now."""
        return len(self._open)

    # -- scheduling ------------------------------------------------------------------------

    def call_later(self, delay_s: float, fn: Callable[[], Any]) -> None:
        """Run `fn` on the loop after `delay_s` real seconds (loop thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._order), fn))

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the loop soon; safe from any thread."""
        self._calls.append(fn)
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def start(self, name: str = "fleet-loop") -> None:
        """Run the loop on its own thread."""
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for its thread."""
        self._stopping = True
        self.call_soon(lambda: None)
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """Serve sockets, timers and calls until `stop`."""
        while not self._stopping:
            self.turn()
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def turn(self) -> None:
        """One pass: wait for I/O or the next timer, then run what is due and flush writes."""
        now = time.monotonic()
        wait = MAX_WAIT_S
        if self._dirty or self._calls:
            wait = 0.0
        elif self._timers:
            wait = max(0.0, min(wait, self._timers[0][0] - now))
        for key, mask in self.sel.select(wait):
            client = key.data
            if client is None:
                try:
                    self._wake_r.recv(4096)
                except BlockingIOError:
                    pass
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
        while self._calls:
            self._calls.popleft()()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()
        self._flush()
        if now >= self._next_misc:
            self._next_misc = now + MISC_EVERY_S
            for client in list(self._open):
                client.loop_misc()

    def _flush(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            for client in dirty:
                sock = client.socket()
                if sock is None:
                    continue
                client.loop_write()
                if client.want_write() and client.socket() is not None and client not in self._writing:
                    self._writing.add(client)
                    self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
            self._dirty -= self._writing
