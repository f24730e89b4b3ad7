"""Calendar feeds: an .ics URL fetched periodically, with a timeout, a size cap, conditional GET and the SSRF rule.

A feed that fails keeps its last good copy and records why it failed, which the household sees on
its page. A URL is fetched only over http or https and only from public addresses (unless the
operator allows private ones, REPLENISH_CALENDAR_ALLOW_PRIVATE): the server fetches what a
household names, so without the rule a household could make it read the operator's own network
(docs/calendars.md, "Feeds").
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from gateway import Clock

from ..storage import Household, HouseholdCalendar
from .ics import MAX_ICS_BYTES, CalendarError, parse_ics
from .rules import DEFAULT_TIMEZONE, zone
from .store import window

__all__ = ["FeedError", "FeedLimits", "Feeds", "check_feed_url"]

log = logging.getLogger(__name__)

_MAX_REDIRECTS = 3
_MAX_URL = 2048


class FeedError(Exception):
    """Why a feed could not be fetched, in words a household reads."""


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """How feeds are fetched (REPLENISH_CALENDAR_* settings)."""

    timeout_s: float = 10.0  # the whole fetch, connect to last byte
    max_bytes: int = MAX_ICS_BYTES
    every: timedelta = timedelta(hours=1)  # of the service's clock; Google refreshes subscribed feeds about twice a day
    allow_private: bool = False
    per_tick: int = 5  # feeds fetched in one tick, so a pass of slow feeds cannot hold up ordering for long


def check_feed_url(url: str) -> str:
    """The URL stripped, when it is one we may fetch at all (http or https, a host, no credentials); else ValueError."""
    url = url.strip()
    if len(url) > _MAX_URL:
        raise ValueError(f"the URL is longer than {_MAX_URL} characters")
    if url.lower().startswith("webcal://"):  # calendar apps' name for the same thing over https
        url = "https://" + url[len("webcal://") :]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("a feed URL starts with https:// (or http://, webcal://)")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username or parts.password:
        raise ValueError("put no user name or password in the URL; use the secret link your calendar offers")
    return url


def _check_address(ip: str, allow_private: bool) -> None:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not allow_private and not address.is_global:
        raise FeedError("the feed's address is not on the public internet")


def _resolve(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FeedError(f"the feed's host name does not resolve ({exc})") from None
    for info in infos:
        _check_address(str(info[4][0]), allow_private)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A feed's answer: a new body (with its validators), or None when the copy we hold is still current (304)."""

    body: bytes | None
    etag: str | None
    last_modified: str | None


class Feeds:
    """Fetches the feeds that are due and keeps each one's last good copy."""

    def __init__(self, engine: Engine, http: httpx.Client, clock: Clock, limits: FeedLimits = FeedLimits()) -> None:
        self.engine = engine
        self.http = http  # built by the composition root: no redirects followed, no proxies from the environment
        self.clock = clock
        self.limits = limits

    def refresh_due(self, now: datetime) -> int:
        """Fetch the feeds not tried for `every` (at most `per_tick`, the longest waiting first); returns how many."""
        with Session(self.engine) as s:
            q = (
                select(HouseholdCalendar.id)
                .where(HouseholdCalendar.kind == "feed")
                .where(or_(col(HouseholdCalendar.checked_at).is_(None), col(HouseholdCalendar.checked_at) <= now - self.limits.every))
                .order_by(col(HouseholdCalendar.checked_at).is_not(None), col(HouseholdCalendar.checked_at))
                .limit(self.limits.per_tick)
            )
            due = [i for i in s.exec(q) if i is not None]
        for calendar_id in due:
            self.refresh(calendar_id, now)
        return len(due)

    def refresh(self, calendar_id: int, now: datetime) -> str | None:
        """Fetch one feed now; returns the error the household sees, or None when its copy is current."""
        with Session(self.engine) as s:
            feed = s.get(HouseholdCalendar, calendar_id)
            if feed is None or feed.kind != "feed" or not feed.url:
                return None
            household = s.get(Household, feed.household_id)
            tz = household.timezone if household is not None else DEFAULT_TIMEZONE
            url, etag, modified = feed.url, feed.etag, feed.last_modified
        error: str | None = None
        got: Fetched | None = None
        try:
            got = self.fetch(url, etag, modified)
            if got.body is not None:
                lo, hi = window(now)
                parse_ics(got.body, zone(tz), lo, hi)  # kept only when it reads
        except (FeedError, CalendarError) as exc:
            error = str(exc)
        with Session(self.engine) as s:
            feed = s.get(HouseholdCalendar, calendar_id)
            if feed is None:  # removed meanwhile
                return error
            feed.checked_at, feed.error = now, error[:512] if error else None
            if got is not None and error is None:
                feed.fetched_at = now
                if got.body is not None:
                    feed.body, feed.etag, feed.last_modified = got.body, got.etag, got.last_modified
            s.add(feed)
            s.commit()
        if error:
            log.info("calendar feed %s failed: %s", calendar_id, error)
        return error

    def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET the feed (conditionally, when we hold a copy), following at most three redirects; raises FeedError."""
        deadline = time.monotonic() + self.limits.timeout_s
        headers = {"Accept": "text/calendar, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                url = check_feed_url(url)
            except ValueError as exc:
                raise FeedError(str(exc)) from None
            _resolve(url, self.limits.allow_private)
            try:
                with self.http.stream("GET", url, headers=headers, timeout=self.limits.timeout_s) as response:
                    self._check_peer(response)
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code == 304:
                        return Fetched(None, etag, last_modified)
                    if response.status_code != 200:
                        raise FeedError(f"the feed answered HTTP {response.status_code}")
                    body = self._read(response, deadline)
                    return Fetched(body, response.headers.get("etag"), response.headers.get("last-modified"))
            except httpx.TimeoutException:
                raise FeedError(f"the feed did not answer within {self.limits.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise FeedError(f"the feed could not be reached ({type(exc).__name__})") from None
        raise FeedError(f"the feed redirected more than {_MAX_REDIRECTS} times")

    def _check_peer(self, response: httpx.Response) -> None:
        # The address actually connected to: a name that resolved to a public address for the
        # check and to a private one for the connection (DNS rebinding) is caught here.
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer:
            _check_address(str(peer[0]), self.limits.allow_private)

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise FeedError(f"the feed is larger than {self.limits.max_bytes // 1024} KiB")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.limits.max_bytes:
                raise FeedError(f"the feed is larger than {self.limits.max_bytes // 1024} KiB")
            if time.monotonic() > deadline:  # a server dripping bytes beats a per-read timeout
                raise FeedError(f"the feed did not answer within {self.limits.timeout_s:g} s")
            chunks.append(chunk)
        return b"".join(chunks)
