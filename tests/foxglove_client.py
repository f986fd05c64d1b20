"""A minimal Foxglove WebSocket protocol client (the `websockets` package), for the tests
of `rtseg foxglove`."""

from __future__ import annotations

import json
import struct
import time

DEADLINE_S = 90.0
SUBPROTOCOL = "foxglove.sdk.v1"


class FoxgloveClient:
    """A minimal Foxglove WebSocket client: channels as advertised, subscriptions, and the
    binary messageData frames (opcode 1, subscription id, log time, payload)."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._connection = connect(url, subprotocols=[SUBPROTOCOL], proxy=None,
                                   max_size=None, open_timeout=30, compression=None)
        self.ws = self._connection.__enter__()
        self.channels: dict[str, dict] = {}
        self.topics: dict[int, str] = {}  # subscription id -> topic
        self.info = self._json()
        assert self.info["op"] == "serverInfo"

    def _json(self) -> dict:
        return json.loads(self.ws.recv(timeout=DEADLINE_S))

    def _take(self, frame) -> tuple[str, int, bytes] | None:
        """A data message as (topic, log time, payload); a JSON one is noted, None."""
        if isinstance(frame, str):
            message = json.loads(frame)
            if message["op"] == "advertise":
                self.channels.update({c["topic"]: c for c in message["channels"]})
            return None
        assert frame[0] == 1, frame[:1]
        sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
        return self.topics[sub_id], log_time, bytes(frame[13:])

    def receive(self, timeout_s: float) -> tuple[str, int, bytes] | None:
        """The next data message as (topic, log time, payload), None for a JSON one;
        TimeoutError if nothing arrives within `timeout_s`."""
        return self._take(self.ws.recv(timeout=timeout_s))

    def subscribe(self, topics: list[str]) -> None:
        """Wait until `topics` are advertised, then subscribe to them."""
        deadline = time.monotonic() + DEADLINE_S
        while not set(topics) <= set(self.channels):
            assert time.monotonic() < deadline, f"never advertised: {topics} {self.channels}"
            self._take(self.ws.recv(timeout=DEADLINE_S))
        first = len(self.topics)
        subs = [{"id": first + i, "channelId": self.channels[t]["id"]}
                for i, t in enumerate(topics)]
        self.topics.update({first + i: t for i, t in enumerate(topics)})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def collect(self, counts: dict[str, int]) -> dict[str, list[tuple[int, bytes]]]:
        """Receive until each topic of `counts` has that many messages."""
        got: dict[str, list[tuple[int, bytes]]] = {t: [] for t in counts}
        deadline = time.monotonic() + DEADLINE_S
        while any(len(got[t]) < n for t, n in counts.items()):
            assert time.monotonic() < deadline, {t: len(v) for t, v in got.items()}
            taken = self._take(self.ws.recv(timeout=DEADLINE_S))
            if taken is not None and taken[0] in got:
                got[taken[0]].append(taken[1:])
        return got

    def __enter__(self) -> FoxgloveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.__exit__(None, None, None)
