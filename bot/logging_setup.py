"""Logging for the bot and the workers: one format, and secrets never reach a log line.

aiogram builds file URLs with the bot token in them (``/file/bot<token>/...``), and aiohttp puts the
URL into the exceptions it raises: a failed download would print the token with its traceback.
:class:`RedactSecrets` sits on every handler of the root logger and replaces each secret, in the
message and in the traceback, with ``[redacted]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        # Longest first: a bot token is redacted whole before its secret half is looked for.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def bot_token_secrets(token: str) -> list[str]:
    """The token, and its secret half on its own (the part after the bot id)."""
    return [token, token.partition(":")[2]]


def configure_logging(level: str, secrets: Iterable[str | None]) -> RedactSecrets:
    """``logging.basicConfig`` with :class:`RedactSecrets` on every root handler."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    # Request logs would print the bot token inside URLs (redacted anyway; and noisy).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redactor
