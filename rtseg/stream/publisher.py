"""`MaskPublisher`: the node's PUB socket, one frame per mask (PROTOCOL.md).

The publisher never blocks the pipeline: ZeroMQ drops masks for a subscriber whose queue
is at the high-water mark (`hwm`), and a send that ZeroMQ refuses outright (EAGAIN) is
dropped and counted here. Binding to anything but loopback (or ``ipc://``) needs
``allow_remote=True``, the ``--allow-remote`` flag of the CLI.
"""

from __future__ import annotations

import errno
import ipaddress
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import zmq

from rtseg.config import DEFAULT_ENDPOINT
from rtseg.errors import RtsegError
from rtseg.protocol import DRIVABLE_CLASSES, SourceStatus, encode, encode_image, encode_status

_LOCAL_TRANSPORTS = ("ipc://", "inproc://")
# Frames from this size on go to ZeroMQ zero-copy: a copy costs a fresh buffer's page faults
# (benchmarks/send_speed.py, both masks of a frame, quiet machine, four runs: 1080p 1.00-1.73x,
# 512x1024 1.20-1.41x faster zero-copy); smaller frames are copied: zero-copy's hand-back
# through pyzmq's garbage thread costs more there (360x640: 0.78-0.88x).
ZERO_COPY_BYTES = 512 * 1024
# Closing waits this long at most for messages already queued (a stopping node's last masks
# and its ``stopping`` status) to reach the subscribers; with no wait ZeroMQ drops them (a
# burst of 80 masks and a last message closed at once: the last lost 20 times in 20).
CLOSE_LINGER_MS = 2000
_EXAMPLE = "tcp://127.0.0.1:PORT"


def _split_tcp(endpoint: str) -> tuple[str, str]:
    """``tcp://HOST:PORT`` -> (HOST without brackets, PORT); RtsegError if malformed."""
    address = endpoint[len("tcp://"):]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not (port == "*" or (port.isdigit() and 0 < int(port) < 65536)):
        raise RtsegError(f"bad endpoint {endpoint!r}: use tcp://HOST:PORT with PORT 1..65535 "
                         f"or '*' (a free port), e.g. {DEFAULT_ENDPOINT}")
    return host.removeprefix("[").removesuffix("]"), port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name or a host name: not provably loopback
        return False


def check_endpoint(endpoint: str, allow_remote: bool = False) -> None:
    """Refuse endpoints that would expose masks beyond this machine unless `allow_remote`.

    Raises:
        RtsegError: a malformed endpoint, or a non-loopback one without `allow_remote`.
    """
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise RtsegError(f"bad endpoint {endpoint!r}: use e.g. {DEFAULT_ENDPOINT} "
                         "or ipc:///tmp/rtseg.sock")
    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return
    if endpoint.startswith("tcp://"):
        host, _ = _split_tcp(endpoint)
        if allow_remote or _is_loopback(host):
            return
    elif allow_remote:
        return
    raise RtsegError(f"{endpoint} is not a loopback address: binding it lets other machines "
                     "read the masks; pass --allow-remote if that is intended, or bind "
                     f"{_EXAMPLE}")


@dataclass(frozen=True)
class FrameMeta:
    """What both topics of one frame share: the frame's seq, stamp and source, the model.
    read_ns: when the node got the frame, where that is not stamp_ns (a replay with
    recorded stamps); latency_ms.total counts from it."""

    seq: int
    stamp_ns: int
    frame_id: str
    model: str
    read_ns: int | None = None


class MaskPublisher:
    """A bound PUB socket that encodes and sends masks without ever blocking.

    Sends are serialised by a lock, so the node's publishing thread and its heartbeat
    thread share the socket. The socket has a ZeroMQ context of its own (``inproc://``
    excepted: that needs the process's shared one), so that `close` can wait for what is
    queued to go out, up to `linger_ms`, whatever else the process has open.
    """

    def __init__(
        self, endpoint: str = DEFAULT_ENDPOINT, *, hwm: int = 4, allow_remote: bool = False,
        curve_secret: str | None = None, curve_clients: str | None = None, bind: bool = True,
        linger_ms: int = CLOSE_LINGER_MS,
    ) -> None:
        """Bind a PUB socket (SNDHWM=`hwm`) to `endpoint`.

        ``tcp://127.0.0.1:*`` binds a free port; `endpoint` then tells which.
        `curve_secret`: a key pair file (``rtseg keys``): the socket is a CURVE server and
        only subscribers with its public key get anything; `curve_clients`: a folder of
        client public keys, the only ones admitted. `bind=False`: checked, not yet bound;
        `bind()` binds it. A node enters the publisher on its exit stack first and binds
        it then, so that a stop signal raised at any moment in between still finds the
        publisher there to close (and its ipc:// socket file removed). `linger_ms`: how
        long `close` waits at most for queued messages to reach connected subscribers.

        Raises:
            RtsegError: the port is in use, the endpoint is malformed or cannot be bound, it
                is not loopback and `allow_remote` is False, or a key file is unusable.
        """
        check_endpoint(endpoint, allow_remote)
        if hwm < 1:
            raise RtsegError(f"hwm must be >= 1 (messages queued per subscriber), got {hwm}")
        self.sent = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._auth = None
        self._requested, self._curve = endpoint, (curve_secret, curve_clients)
        self._endpoint = ""  # what close() removes if it is an ipc:// socket file
        self._linger_ms = max(0, int(linger_ms))
        shared = endpoint.startswith("inproc://")
        self._context = zmq.Context.instance() if shared else zmq.Context(io_threads=1)
        self._own_context = not shared
        self._sock: zmq.Socket | None = self._context.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)  # until close(): a failed bind waits for nothing
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.copy_threshold = ZERO_COPY_BYTES
        if endpoint.startswith("tcp://["):
            self._sock.setsockopt(zmq.IPV6, 1)
        if bind:
            self.bind()

    def bind(self) -> None:
        """Bind the socket to the endpoint given to the constructor (once)."""
        if self._sock is None or self._endpoint:
            raise RtsegError("this publisher is closed or already bound")
        endpoint = self._requested
        if "*" not in endpoint:  # known before binding: a stop mid-bind still removes it
            self._endpoint = endpoint
        try:
            self._secure(*self._curve)
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._endpoint = ""  # not bound: a socket file there is another node's
            self.close()
            raise _bind_error(endpoint, exc) from None
        except BaseException:
            self.close()
            raise
        self._endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _secure(self, curve_secret: str | None, curve_clients: str | None) -> None:
        if curve_secret is None:
            return
        from rtseg import curve

        if curve_clients is not None:
            self._auth = curve.start_authenticator(self._context, curve_clients)
        curve.make_server(self._sock, curve_secret)

    @property
    def endpoint(self) -> str:
        """The bound endpoint, with the real port when bound with ``:*``."""
        return self._endpoint

    def publish(
        self,
        topic: str,
        kind: str,
        mask: np.ndarray,
        *,
        seq: int,
        stamp_ns: int,
        frame_id: str,
        classes: Sequence[str],
        model: str,
        encoding: str = "mono8",
        latency_ms: Mapping[str, float] | None = None,
    ) -> bool:
        """Encode `mask` (``(H, W) uint8``, see `rtseg.protocol.encode`) and send it.

        Returns:
            True if ZeroMQ took the message, False if it was dropped (counted in `dropped`).
            A subscriber at its high-water mark misses it silently inside ZeroMQ either way.

        Raises:
            ProtocolError: the mask or metadata break PROTOCOL.md.
        """
        frame = encode(topic, kind, mask, seq=seq, stamp_ns=stamp_ns, frame_id=frame_id,
                       classes=classes, model=model, encoding=encoding, latency_ms=latency_ms)
        return self.send_frame(frame)

    def publish_frame(self, name: str, drivable: np.ndarray, classes: np.ndarray,
                      meta: FrameMeta, *, class_names: Sequence[str], encoding: str = "mono8",
                      timings: dict[str, float] | None = None) -> dict[str, float]:
        """Both topics of one frame: ``NAME/drivable`` then ``NAME/classes``, each an
        ``(H, W) uint8`` mask. `encoding` ``bits`` applies to the drivable mask (classes go
        mono8). `timings` (ms per stage) travel as latency_ms, with ``total`` (capture to
        this send) and ``publish`` filled in; returns them as sent last."""
        timings = dict(timings or {})
        start = time.time_ns()
        origin = meta.stamp_ns if meta.read_ns is None else meta.read_ns
        common = {"seq": meta.seq, "stamp_ns": meta.stamp_ns, "frame_id": meta.frame_id,
                  "model": meta.model}
        for topic, kind, mask, names, enc in (
                ("drivable", "drivable", drivable, DRIVABLE_CLASSES, encoding),
                ("classes", "classes", classes, class_names,
                 "mono8" if encoding == "bits" else encoding)):
            timings["total"] = (time.time_ns() - origin) / 1e6
            self.publish(f"{name}/{topic}", kind, mask, classes=names, encoding=enc,
                         latency_ms=timings, **common)
            timings["publish"] = (time.time_ns() - start) / 1e6
        timings["total"] = (time.time_ns() - origin) / 1e6
        return timings

    def publish_image(self, name: str, jpeg: bytes, width: int, height: int,
                      meta: FrameMeta) -> bool:
        """``NAME/image``: the frame as a JPEG of `width` x `height` (PROTOCOL.md)."""
        return self.send_frame(encode_image(
            f"{name}/image", jpeg, seq=meta.seq, stamp_ns=meta.stamp_ns,
            frame_id=meta.frame_id, width=width, height=height, model=meta.model))

    def publish_status(self, name: str, state: str, sources: Sequence[SourceStatus],
                       node: str | None = None) -> bool:
        """``NAME/status``: the heartbeat (PROTOCOL.md, "Status messages") of node `node`
        (default: NAME)."""
        return self.send_frame(encode_status(f"{name}/status", node=node or name, state=state,
                                             stamp_ns=time.time_ns(), sources=sources))

    def send_frame(self, frame: bytes) -> bool:
        """Send an already encoded frame without blocking; False (and counted) if dropped.

        A frame of `ZERO_COPY_BYTES` or more is not copied: ZeroMQ holds the (immutable)
        bytes object until it has gone out."""
        with self._lock:
            if self._sock is None:
                raise RuntimeError("MaskPublisher is closed")
            try:
                self._sock.send(frame, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1
                return False
            self.sent += 1
            return True

    def close(self) -> None:
        """Close the socket and remove the socket file of an ``ipc://`` endpoint it bound;
        messages already queued still go out to connected subscribers, for `linger_ms` at
        most (then they are dropped). Safe to call twice."""
        with self._lock:
            if self._sock is not None:
                sock, self._sock = self._sock, None
                _remove_ipc_file(self._endpoint)  # first: nothing can come between
                sock.close(linger=self._linger_ms if self._endpoint else 0)
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            if self._own_context and not self._context.closed:
                self._context.term()  # returns once the queue is sent or the linger is over

    def __enter__(self) -> MaskPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _remove_ipc_file(endpoint: str) -> None:
    """ZeroMQ leaves an ipc:// socket file behind; a closed publisher takes its own away."""
    if endpoint.startswith("ipc://") and not endpoint.startswith("ipc://@"):
        import os

        try:
            os.unlink(endpoint[len("ipc://"):])
        except OSError:
            pass


def _bind_error(endpoint: str, exc: zmq.ZMQError) -> RtsegError:
    if exc.errno == errno.EADDRINUSE:
        port = endpoint.rpartition(":")[2]
        if endpoint.startswith("tcp://"):
            return RtsegError(f"port {port} is in use ({endpoint}): stop the other node or pick "
                              f"another port with --bind {_EXAMPLE}")
        return RtsegError(f"{endpoint} is in use: stop the other node or pick another endpoint "
                          "with --bind")
    return RtsegError(f"cannot bind {endpoint}: {exc.strerror}; use an address of this machine, "
                      f"e.g. --bind {DEFAULT_ENDPOINT}")
