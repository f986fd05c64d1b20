"""`MaskSubscriber`: receive masks from an rtseg node (needs only pyzmq, msgpack, numpy).

```python
from rtseg.client import MaskSubscriber

with MaskSubscriber("tcp://127.0.0.1:5555", ["demo/drivable"], latest_only=True,
                    timeout_ms=1000) as sub:
    for header, mask in sub:          # mask: (H, W) uint8; stops after 1 s without a mask
        print(header.seq, mask.mean())
```
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import zmq

from rtseg.errors import RtsegError
from rtseg.protocol import (
    MAX_SIDE,
    MaskHeader,
    NodeStatus,
    ProtocolError,
    decode_message,
    subscription_prefix,
)
from rtseg.wire import Limits


class MaskSubscriber:
    """SUB socket(s) connected to a node's endpoint, subscribed to exact topics.

    With ``latest_only=True`` each topic gets its own socket with ``ZMQ_CONFLATE`` (CONFLATE
    keeps one message per *socket*, so one shared socket would keep only the newest mask of
    any topic): `recv` then returns the newest mask of a topic that has one waiting, taking
    topics in turn, and older masks are dropped. Without it one socket holds all topics and
    masks arrive in the order they were published (up to ZeroMQ's receive high-water mark).

    Not thread-safe: use it from one thread.
    """

    def __init__(
        self,
        endpoint: str,
        topics: Sequence[str],
        *,
        latest_only: bool = False,
        timeout_ms: int | None = None,
        max_width: int = MAX_SIDE,
        max_height: int = MAX_SIDE,
        on_status: Callable[[NodeStatus], None] | None = None,
        curve_server_key: str | Path | None = None,
        curve_secret: str | Path | None = None,
        every_topic: bool = False,
    ) -> None:
        """Connect to `endpoint` (e.g. ``tcp://127.0.0.1:5555``) and subscribe to `topics`.

        Args:
            topics: exact topic names, e.g. ``["demo/drivable"]``; a single str is one topic.
                ``NODE/image`` topics work too; ``NODE/status`` topics go to `on_status`.
            latest_only: keep only the newest mask per topic (ZMQ_CONFLATE).
            timeout_ms: default receive timeout of `recv` and `__iter__`; None waits forever.
            max_width, max_height: larger masks are refused with a ProtocolError; ZeroMQ
                drops frames longer than such a mask could be (ZMQ_MAXMSGSIZE).
            on_status: called with each NodeStatus received on a subscribed status topic
                (from within `recv`); without it status messages are skipped.
            curve_server_key: the node's public key file (``rtseg keys``) for a node run
                with ``--curve-secret``; `curve_secret`: this client's own key pair file,
                needed when the node admits only listed clients (else a fresh pair).
            every_topic: subscribe to every topic the node publishes (`topics` empty):
                for discovery (`rtseg echo ENDPOINT`); not with `latest_only`.

        Raises:
            RtsegError: the endpoint cannot be connected to (the message names it).
            ValueError: no topics.
        """
        topics = (topics,) if isinstance(topics, str) else tuple(topics)
        if not topics and not every_topic:
            raise ValueError("MaskSubscriber needs at least one topic, e.g. 'demo/drivable'")
        if every_topic and (topics or latest_only):
            raise ValueError("every_topic subscribes to all topics: no topics, no latest_only")
        self._prefixes = [b""] if every_topic else [subscription_prefix(t) for t in topics]
        self.endpoint = endpoint
        self.topics = topics
        self.latest_only = latest_only
        self.timeout_ms = timeout_ms
        self._limits = {"max_width": max_width, "max_height": max_height}
        self._max_frame = Limits(max_width, max_height).max_frame
        self._on_status = on_status
        self._curve = (curve_server_key, curve_secret)
        self._sockets: list[zmq.Socket] = []
        self._poller = zmq.Poller()
        self._next = 0  # round-robin start among the sockets
        groups = [[p] for p in self._prefixes] if latest_only else [self._prefixes]
        try:
            for prefixes in groups:
                self._sockets.append(self._connect(prefixes))
        except BaseException:
            self.close()
            raise

    def _connect(self, prefixes: list[bytes]) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_frame)
        if self._curve[0] is not None:
            from rtseg.curve import make_client

            try:
                make_client(sock, *self._curve)
            except BaseException:
                sock.close(linger=0)
                raise
        if self.latest_only:
            sock.setsockopt(zmq.CONFLATE, 1)  # must precede connect
        if self.endpoint.startswith("tcp://["):
            sock.setsockopt(zmq.IPV6, 1)
        for prefix in prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise RtsegError(
                f"cannot connect to {self.endpoint!r}: {exc.strerror}; use an endpoint like "
                "tcp://127.0.0.1:5555 or ipc:///tmp/rtseg.sock"
            ) from None
        self._poller.register(sock, zmq.POLLIN)
        return sock

    def recv(self, timeout_ms: int | None = None) -> tuple[MaskHeader, np.ndarray]:
        """Wait for the next mask or image: ``(header, data)``, data ``(H, W) uint8`` for a
        mask, the JPEG file as ``(N,) uint8`` for an image (``header.kind == "image"``).

        Status messages that arrive meanwhile go to `on_status` (or are skipped); the
        timeout covers the whole wait.

        Args:
            timeout_ms: overrides the subscriber's timeout; None uses it (None = forever).

        Raises:
            TimeoutError: no mask within the timeout.
            ProtocolError: the received frame breaks PROTOCOL.md (it is consumed; the next
                call receives the next mask).
        """
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            try:
                message = self.recv_message(left)
            except TimeoutError:
                raise self._timeout(timeout) from None
            if not isinstance(message, NodeStatus):
                return message
            if self._on_status is not None:
                self._on_status(message)

    def recv_message(self, timeout_ms: int | None = None
                     ) -> tuple[MaskHeader, np.ndarray] | NodeStatus:
        """The next message of any kind: ``(header, data)`` as `recv` gives, or a
        NodeStatus. Raises like `recv`."""
        return decode_message(self._recv_view(timeout_ms), **self._limits)

    def statuses(self, timeout_ms: int | None = None) -> Iterator[NodeStatus]:
        """Yield the status messages of subscribed ``NODE/status`` topics, skipping other
        kinds and malformed frames, until none arrives within the timeout."""
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        while True:
            try:
                message = self.recv_message(timeout)
            except TimeoutError:
                return
            except ProtocolError:
                continue
            if isinstance(message, NodeStatus):
                yield message

    def recv_frame(self, timeout_ms: int | None = None) -> bytes:
        """Like `recv` but return the raw frame (topic + ``\\x00`` + payload) undecoded."""
        return bytes(self._recv_view(timeout_ms))

    def _recv_view(self, timeout_ms: int | None) -> memoryview:
        """The next frame as a view of ZeroMQ's own message (received without a copy: the
        decoders copy what they keep, once)."""
        if not self._sockets:
            raise RuntimeError("MaskSubscriber is closed")
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        ready = dict(self._poller.poll(timeout))
        if not ready:
            raise self._timeout(timeout)
        count = len(self._sockets)
        for offset in range(count):  # take topics in turn so none starves
            index = (self._next + offset) % count
            if self._sockets[index] in ready:
                self._next = (index + 1) % count
                return self._sockets[index].recv(copy=False).buffer
        raise AssertionError("poll reported a socket that is not ours")  # pragma: no cover

    def _timeout(self, timeout_ms: int | None) -> TimeoutError:
        return TimeoutError(f"no mask on {list(self.topics)} from {self.endpoint} within "
                            f"{timeout_ms} ms; is the node running and publishing there?")

    def __iter__(self) -> Iterator[tuple[MaskHeader, np.ndarray]]:
        """Yield ``(header, mask)`` until no mask arrives within `timeout_ms`, then stop
        (no TimeoutError); without a timeout it never stops by itself. A malformed frame
        raises ProtocolError; call `recv` in a loop to skip those instead."""
        while True:
            try:
                yield self.recv()
            except TimeoutError:
                return

    def close(self) -> None:
        """Close the sockets (linger 0: nothing is waited for). Safe to call twice."""
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets = []

    def __enter__(self) -> MaskSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
