"""Structured logs (SPEC 6) through structlog: every stdlib `logging` record, ours and our libraries', one line each.

`json` renders one JSON object a line for log shippers (timestamp, level, logger, event, and the
exception when there is one); `console` renders the same fields for people.
"""

from __future__ import annotations

import logging
from typing import Literal

import structlog

__all__ = ["configure_logging"]

_QUIET = ("amqtt", "transitions", "httpx", "uvicorn.access")  # chatty at INFO, useful at WARNING


def configure_logging(fmt: Literal["json", "console"], level: str) -> None:
    """Route every log record through structlog's renderer to stderr."""
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
