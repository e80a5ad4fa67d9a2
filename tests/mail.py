"""An SMTP server on 127.0.0.1 that keeps what it receives, for the alert tests."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

from facecrop_dev.local_s3 import free_port


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)

    def airflow_connection_env(self, conn_id: str = "smtp_default") -> dict[str, str]:
        conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                "extra": {"disable_tls": True, "disable_ssl": True}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            box.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
