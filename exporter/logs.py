"""Log output: logfmt or JSON lines on stderr, with secrets scrubbed from every line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
REDACTED = "<redacted>"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _level(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..." key=value` lines."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, Any]] = [
            ("ts", _timestamp(record)),
            ("level", _level(record)),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        pairs.extend(_fields(record).items())
        if record.exc_info:
            pairs.append(("exception", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": _level(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def scrub(text: str, *secrets: str) -> str:
    """`text` with every secret (an API key) replaced: for text that is shown, not logged."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


# Every secret this process has learned (API keys), scrubbed from every log line. Old keys
# stay: a request sent before a reload may still log one.
SECRETS: list[str] = []


def register_secret(secret: str) -> None:
    """Scrub `secret` from every log line from now on: call it where a secret is learned."""
    if secret and secret not in SECRETS:
        SECRETS.append(secret)


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and replaces every registered secret in its output."""

    def __init__(self, inner: logging.Formatter, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = SECRETS if secrets is None else secrets

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class FieldLogger:
    """A logger whose fields are keywords: `log.info("account removed", account_id=...)`.

    `context` fields (the workspace, in the several-workspaces form) come first on every line.
    """

    def __init__(self, name: str, **context: Any) -> None:
        self.logger = logging.getLogger(name)
        self.context = {key: value for key, value in context.items() if value is not None}

    def bind(self, **context: Any) -> FieldLogger:
        """The same logger with more context fields."""
        bound = FieldLogger(self.logger.name, **self.context)
        bound.context.update((k, v) for k, v in context.items() if v is not None)
        return bound

    def log(self, level: int, msg: str, *, exc_info: bool = False, **fields: Any) -> None:
        """Log `msg` at `level` with `fields` after the context's."""
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level,
                msg,
                exc_info=exc_info,
                extra={"fields": {**self.context, **fields}},
                stacklevel=3,
            )

    def debug(self, msg: str, **fields: Any) -> None:
        """Log at debug."""
        self.log(logging.DEBUG, msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        """Log at info."""
        self.log(logging.INFO, msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        """Log at warn."""
        self.log(logging.WARNING, msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        """Log at error."""
        self.log(logging.ERROR, msg, **fields)

    def critical(self, msg: str, **fields: Any) -> None:
        """Log at error (critical), with the trace of the exception being handled."""
        self.log(logging.CRITICAL, msg, exc_info=True, **fields)

    def exception(self, msg: str, **fields: Any) -> None:
        """Log at error with the trace of the exception being handled."""
        self.log(logging.ERROR, msg, exc_info=True, **fields)


def _logfmt_value(value: Any) -> str:
    if value is None:
        return '""'
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n\t') and text.isprintable():
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> RedactingFormatter:
    """Send all logs to stderr in `fmt` at `level`, scrubbed of every registered secret."""
    inner: logging.Formatter = JsonFormatter() if fmt == "json" else LogfmtFormatter()
    formatter = RedactingFormatter(inner)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # aiohttp's own access log would add a line per scrape; keep it for debug.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )
    return formatter
