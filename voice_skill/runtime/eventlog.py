"""The event log: JSON Lines, the contract other programs read (see the README's table)."""

from __future__ import annotations

import json
from typing import IO, Callable


class EventLog:
    """JSON Lines, one object per line, each with ``t`` and ``event`` first."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.listeners: list[Callable[[dict], None]] = []

    def write(self, t: float, event: str, **fields: object) -> None:
        record = {"t": round(t, 3), "event": event, **fields}
        if self.stream is not None:
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.stream.flush()
        for listener in self.listeners:
            listener(record)
