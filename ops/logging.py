"""Log records with the request id, secrets redacted, as plain text or one JSON object a line.

``LOGGING`` in config/settings.py puts ``RequestIdFilter`` and ``RedactFilter`` on the console
handler and picks ``JsonFormatter`` when ``STOWAGE_LOG_FORMAT=json`` (the production default).
The request id is set by ``config.middleware.RequestIdMiddleware`` in ``request_id_var``.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str] = ContextVar("stowage_request_id", default="")

REDACTED = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization header values, whatever the scheme: "Authorization: Bearer x", {'HTTP_AUTHORIZATION': 'ApiKey x'}.
    (
        re.compile(
            r"(?i)\b((?:http_)?authorization)([\"']?\s*[:=]\s*[\"']?)((?:bearer|apikey|basic|token)\s+)?[^\s\"',;}\\]+"
        ),
        r"\1\2\3" + REDACTED,
    ),
    # A scheme and credential on their own, e.g. in a repr of headers.
    (re.compile(r"(?i)\b(bearer|apikey)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    # API keys.
    (re.compile(r"\bstow_[A-Za-z0-9_-]+"), "stow_" + REDACTED),
    # Signatures and credentials in presigned URLs: ours (sig=) and S3's.
    (
        re.compile(r"(?i)\b(sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=[^&\s\"'#\\]+"),
        r"\1=" + REDACTED,
    ),
    # Share-link tokens in /s/<token> and /s/<token>/download.
    (re.compile(r"/s/(?!\[REDACTED\])[A-Za-z0-9_-]+"), "/s/" + REDACTED),
    # Invitation tokens in /join/<organization>/<token>: the link alone makes a member.
    (re.compile(r"(/join/[A-Za-z0-9_-]+/)(?!\[REDACTED\])[A-Za-z0-9_-]+"), r"\1" + REDACTED),
    # Single sign-on: the callback's code and state, the sign-out's ID token.
    (re.compile(r"([?&](?:code|state|session_state|id_token_hint)=)(?!\[REDACTED\])[^&\s\"'#\\]+"), r"\1" + REDACTED),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id``: the current request's id, or "-" outside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class RedactFilter(logging.Filter):
    """Removes credentials from the message, the traceback and the stack before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class PlainFormatter(logging.Formatter):
    default_format = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

    def __init__(self, fmt: str | None = None, *args, **kwargs) -> None:
        super().__init__(fmt or self.default_format, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or request_id_var.get() or None
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # Redact the finished line too, for handlers configured without RedactFilter.
        return redact(json.dumps(entry, ensure_ascii=False, default=str))
