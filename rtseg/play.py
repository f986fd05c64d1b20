"""`rtseg play RECORDING`: publish an `rtseg record` recording on the wire again, like
`ros2 bag play`, so that consumers (a planner, the viewer, a logger) run on a recorded
drive without a camera or a model.

Every message of the recording's rtseg topics goes out as PROTOCOL.md frames at its
recorded log time (scaled by `rate`), in order: ``/NAME/drivable`` and ``/NAME/classes``
(``sensor_msgs/Image`` mono8) as masks with their recorded seq (the MCAP sequence), capture
stamp and frame_id and the class names of the recording's ``rtseg`` metadata;
``/NAME/image`` as image frames; ``/NAME/status`` (DiagnosticArray) as status heartbeats,
sent with the time they go out. ``/NAME/overlay`` and other topics are not rtseg's wire and
are left out. A recording without rtseg's metadata (a camera bag) has no masks: `rtseg run
--source` segments those. No torch here.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rtseg.bag_census import RTSEG_METADATA, file_census, recorded_classes, topic_messages
from rtseg.errors import RtsegError
from rtseg.protocol import DRIVABLE_CLASSES, SourceStatus, encode, encode_image, encode_status
from rtseg.signals import on_stop_signals
from rtseg.stream.bag_source import bag_files
from rtseg.stream.publisher import MaskPublisher

log = logging.getLogger("rtseg.play")
MODEL = "rtseg play"  # the masks' `model`: the recording does not keep the node's
STATES = {0: "ok", 1: "ok", 2: "reconnecting", 3: "ended"}  # DiagnosticStatus level -> state
POLL_S = 0.05  # how often a wait looks at the stop flags


@dataclass(frozen=True)
class PlayConfig:
    """`rtseg play`: the recording (`path`), where to publish it (`bind`, `hwm`,
    `allow_remote`), at what speed (`rate` x recorded), after `delay_s` (subscribers
    connect), once or `loop`ing."""

    path: str
    bind: str = "tcp://127.0.0.1:5555"
    rate: float = 1.0
    loop: bool = False
    delay_s: float = 1.0
    hwm: int = 100
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise RtsegError(f"--rate must be positive (1 = as recorded), got {self.rate}")
        if self.delay_s < 0:
            raise RtsegError(f"--delay must be 0 or more seconds, got {self.delay_s}")


@dataclass
class Player:
    """Opens the recording and binds the publisher; `run` plays it (module doc)."""

    cfg: PlayConfig
    stop: threading.Event = field(default_factory=threading.Event)  # set by another thread
    signalled: list = field(default_factory=list)  # stop signals (the handler only appends)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.files = bag_files(Path(self.cfg.path))
        self._census = {f: file_census(f) for f in self.files}
        metadata = [census.metadata.get(RTSEG_METADATA) for census in self._census.values()]
        self.classes = {topic: names for meta in metadata if meta
                        for topic, names in recorded_classes(meta).items()}
        if not any(metadata):
            raise RtsegError(f"{self.cfg.path} is not an rtseg recording (no rtseg metadata): "
                             "rtseg play republishes rtseg record's masks; to segment a "
                             "camera recording use rtseg run --source")
        self.publisher = MaskPublisher(self.cfg.bind, hwm=self.cfg.hwm,
                                       allow_remote=self.cfg.allow_remote)

    @property
    def endpoint(self) -> str:
        return self.publisher.endpoint

    def run(self) -> float:
        """Publish until the recording ends (or forever with `loop`) or `stop` is set;
        returns the seconds played."""
        start = time.monotonic()
        if self._wait(self.cfg.delay_s):
            return 0.0
        while True:
            self._pass()
            if self._stopped() or not self.cfg.loop:
                return time.monotonic() - start

    def _stopped(self) -> bool:
        return bool(self.signalled) or self.stop.is_set()

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds` or until stopped (polled: a signal handler may take no lock);
        True if stopped."""
        end = time.monotonic() + seconds
        while not self._stopped():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_S))
        return True

    def _pass(self) -> None:
        wall0 = first = None
        for topic, log_time, sequence, ros in self._messages():
            if first is None:
                first, wall0 = log_time, time.monotonic()
            due = wall0 + (log_time - first) / 1e9 / self.cfg.rate
            if self._wait(due - time.monotonic()):
                return
            frame = self._frame(topic, sequence, ros)
            if frame is not None:
                self.publisher.send_frame(frame)
                self.counts[topic.strip("/")] += 1

    def _messages(self) -> Iterator[tuple[str, int, int, object]]:
        """(topic, log time, MCAP sequence, decoded ROS message) of rtseg's topics, file
        after file, each in log-time order (a cut file: in the order written)."""
        for path in self.files:
            census = self._census[path]
            topics = [t.topic for t in census.topics
                      if t.topic.rpartition("/")[2] in WIRE_KINDS]
            with path.open("rb") as file:
                try:
                    for _, channel, message, ros in topic_messages(file, topics, decoded=True):
                        yield channel.topic, message.log_time, message.sequence, ros
                except Exception as error:  # noqa: BLE001  (a cut file ends where it ends)
                    if census.complete:
                        raise
                    log.warning("%s ends early (%s); played what precedes it", path, error)

    def _frame(self, topic: str, sequence: int, ros) -> bytes | None:
        """The PROTOCOL.md frame of one recorded message."""
        name, _, kind = topic.strip("/").rpartition("/")
        if kind == "status":
            return _status_frame(f"{name}/status", ros)
        stamp = ros.header.stamp.sec * 10**9 + ros.header.stamp.nanosec
        common = {"seq": sequence, "stamp_ns": stamp, "frame_id": ros.header.frame_id,
                  "model": MODEL}
        if kind == "image":
            from rtseg.imagefile import sniff

            _, width, height = sniff(bytes(ros.data))
            return encode_image(f"{name}/image", bytes(ros.data), width=width, height=height,
                                **common)
        import numpy as np

        mask = np.frombuffer(bytes(ros.data), np.uint8).reshape(ros.height, ros.step)
        names = DRIVABLE_CLASSES if kind == "drivable" else self.classes.get(topic)
        if names is None:
            raise RtsegError(f"{self.cfg.path}: no class names for {topic} in its rtseg "
                             "metadata; was it written by rtseg record?")
        return encode(f"{name}/{kind}", kind, mask[:, :ros.width], classes=names, **common)

    def close(self) -> None:
        self.publisher.close()


WIRE_KINDS = ("drivable", "classes", "image", "status")


def _status_frame(topic: str, ros) -> bytes:
    """A recorded DiagnosticArray (rtseg.ros2msg.status_to_ros) as a status frame."""
    node_entry, *entries = ros.status
    node = node_entry.name.removeprefix("rtseg/")
    sources = []
    for entry in entries:
        values = {kv.key: kv.value for kv in entry.values}
        sources.append(SourceStatus(name=entry.hardware_id, state=STATES.get(entry.level, "ok"),
                                    fps=float(values.get("fps", 0.0)),
                                    dropped=int(values.get("dropped", 0)),
                                    last_seq=int(values.get("last_seq", -1))))
    return encode_status(topic, node=node, state=node_entry.message, stamp_ns=time.time_ns(),
                         sources=sources)


def play(cfg: PlayConfig) -> str:
    """`rtseg play`: publish the recording until it ends (or Ctrl-C / SIGTERM with
    `loop`); returns the summary line."""
    player = Player(cfg)
    endpoint = player.endpoint
    try:
        log.info("playing %s (%d file%s) on %s", cfg.path, len(player.files),
                 "s" if len(player.files) > 1 else "", player.endpoint)
        with on_stop_signals(player.signalled.append):
            seconds = player.run()
    finally:
        player.close()
    per_topic = ", ".join(f"{t} {n}" for t, n in player.counts.items()) or "none"
    return (f"rtseg play: {sum(player.counts.values())} messages ({per_topic}) in "
            f"{seconds:.1f} s on {endpoint}"
            + (f"; stopped by {signal.Signals(player.signalled[0]).name}"
               if player.signalled else ""))
