"""Dead letters: rejected device messages, kept with their reason so an operator can see them (SPEC 3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .tables import GwDeadLetter

__all__ = ["DeadLetters"]

_PAYLOAD_KEPT = 4096  # bytes of a rejected payload kept for the operator


class DeadLetters:
    """Writes and lists gw_dead_letters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, topic: str, payload: bytes, reason: str, detail: str, now: datetime) -> None:
        """Keep a rejected message with its reason."""
        with Session(self.engine) as s:
            s.add(
                GwDeadLetter(
                    received_at=now,
                    topic=topic[:256],
                    reason=reason[:64],
                    detail=detail[:512],
                    payload=payload[:_PAYLOAD_KEPT].decode("utf-8", "replace"),
                )
            )
            s.commit()

    def recent(self, limit: int = 100) -> list[GwDeadLetter]:
        """The most recent rejected messages."""
        with Session(self.engine) as s:
            return list(s.exec(select(GwDeadLetter).order_by(GwDeadLetter.id.desc()).limit(limit)))  # type: ignore[union-attr]
