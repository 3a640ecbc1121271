"""Channels for local runs: the console and a JSON-lines file."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime

from autopilot.channels.base import UNLIMITED, Channel, Deadline, Delivery, Message
from autopilot.timeutil import iso_utc

_file_lock = threading.Lock()


class ConsoleChannel(Channel):
    """Prints messages to standard output."""

    type = "console"
    supports_direct = True

    def _print(self, header: str, message: Message, now: datetime) -> Delivery:
        lines = [f"── {header} · {iso_utc(now)}"]
        if message.title:
            lines.append(message.title)
        lines.append(message.text)
        out = self.env.out()
        out.write("\n".join(lines) + "\n")
        out.flush()
        return Delivery(
            self.id, True, iso_utc(now), message_id=f"console:{message.key}", response="printed"
        )

    def send_to_community(
        self, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._print(f"{message.community_id} #{self.id}", message, now)

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._print(f"{message.community_id} → {address}", message, now)


class FileChannel(Channel):
    """Appends one JSON object per message to a file under the output directory."""

    type = "file"
    supports_direct = True

    def _append(self, record: dict[str, object], now: datetime) -> Delivery:
        path = os.path.join(self.env.output_dir, str(self.spec.options["path"]))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        line = json.dumps(record, ensure_ascii=False, sort_keys=True)
        with _file_lock, open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return Delivery(
            self.id,
            True,
            iso_utc(now),
            message_id=f"file:{record['key']}",
            response=f"appended to {self.spec.options['path']}",
        )

    def send_to_community(
        self, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._append(
            {
                "at_utc": iso_utc(now),
                "community": message.community_id,
                "channel": self.id,
                "job": message.job_id,
                "key": message.key,
                "title": message.title,
                "text": message.text,
            },
            now,
        )

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._append(
            {
                "at_utc": iso_utc(now),
                "community": message.community_id,
                "channel": self.id,
                "to": address,
                "key": message.key,
                "title": message.title,
                "text": message.text,
            },
            now,
        )
