"""The real receivers' parts for alerts tests: a free port, what an HTTP receiver received,
and a mailbox for the SMTP server (the fixtures that start them are in conftest.py)."""

import json
import socket
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (Unix seconds)

    def json(self):
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # The statuses to answer, one per request (then 200).
    answers: list[int] = field(default_factory=list)


class MailBox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"
