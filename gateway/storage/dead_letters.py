"""Dead letters: rejected device messages, kept with their reason so an operator can see them (SPEC 3).

A dead letter must be storable whatever the message was: it is where poison ends up. Its payload
is kept as bytes, exactly as it arrived; its topic, reason and detail are text, in which every
character a database refuses (PostgreSQL: NUL; any: an unpaired surrogate) or that would mislead
a reader (controls, bidi overrides) is written as a Python escape, `\\x00` or `\\u202e`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from re import Match

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..protocol import OverBudget, OverBudgetNote, persistently_over_budget, read_note
from ..protocol.budget import PERSISTENT_WINDOW
from ..protocol.messages import UNSAFE_TEXT
from .tables import GwDeadLetter

__all__ = ["DeadLetters", "printable"]

_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})

_PAYLOAD_KEPT = 4096  # bytes of a rejected payload kept for the operator


def _escape(m: Match[str]) -> str:
    return ascii(m.group())[1:-1]  # '\x00' -> \x00, '\ud800' -> \ud800


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with UNSAFE_TEXT's characters written as escapes (a clean text is unchanged)."""
    if UNSAFE_TEXT.search(text) is None:
        return text[:limit]
    return UNSAFE_TEXT.sub(_escape, text)[:limit]


class DeadLetters:
    """Writes and lists gw_dead_letters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, topic: str, payload: bytes, reason: str, detail: str, now: datetime, once: bool = False) -> bool:
        """Keep a rejected message with its reason: the payload's first 4 KiB as bytes, the texts made safe to store.

        `once`: a retained message, which the broker sends again at every reconnect: it is kept
        only if no letter holds it already (same topic, reason and bytes). Returns whether it was kept.
        """
        topic, reason, kept = printable(topic, 256), printable(reason, 64), bytes(payload[:_PAYLOAD_KEPT])
        with Session(self.engine) as s:
            if once:
                d = GwDeadLetter
                q = select(d.id).where(d.topic == topic, d.reason == reason, d.payload_size == len(payload), d.payload == kept).limit(1)
                if s.exec(q).first() is not None:
                    return False
            s.add(
                GwDeadLetter(
                    received_at=now,
                    topic=topic,
                    reason=reason,
                    detail=printable(detail, 512),
                    payload=kept,
                    payload_size=len(payload),
                )
            )
            s.commit()
        return True

    def recent(self, limit: int = 100) -> list[GwDeadLetter]:
        """The most recent rejected messages."""
        with Session(self.engine) as s:
            return list(s.exec(select(GwDeadLetter).order_by(GwDeadLetter.id.desc()).limit(limit)))  # type: ignore[union-attr]

    def over_budget(self, device_ids: Iterable[str], now: datetime) -> dict[str, OverBudget]:
        """Those of `device_ids` over their message budget persistently at `now`, from every worker's `over_budget` notes of the last hour."""
        wanted = set(device_ids)
        if not wanted:
            return {}
        d = GwDeadLetter
        # A note's topic is its device's own (`.../{device_id}/{suffix}`): device ids are [A-Za-z0-9_-], `_` a LIKE wildcard.
        on_their_topics = sa.or_(*(d.topic.like(f"%/{device.translate(_LIKE_SPECIAL)}/%", escape="\\") for device in sorted(wanted)))  # type: ignore[attr-defined]
        q = select(d.topic, d.received_at, d.detail).where(d.reason == "over_budget", d.received_at >= now - PERSISTENT_WINDOW, d.received_at <= now, on_their_topics)
        notes: dict[str, list[OverBudgetNote]] = defaultdict(list)
        with Session(self.engine) as s:
            for topic, at, detail in s.exec(q):
                device = topic.rsplit("/", 2)[-2] if topic.count("/") >= 2 else ""
                if device in wanted and (note := read_note(at, detail)) is not None:
                    notes[device].append(note)
        return {device: found for device, its in notes.items() if (found := persistently_over_budget(device, its, now)) is not None}
