"""What an MCAP recording holds, without decoding a message: per topic its ROS type, message
count and first and last log time; per file its size, metadata records and whether it is
complete (has its summary and index).

A complete file is read from its summary (the channels' message counts; a topic's span is
that of the chunks holding it, whole chunks: a fair estimate). A file without one (a
recorder killed mid-write) is read once from the start up to where it ends, with a warning.
Used by the replay (`rtseg.stream.bag_source`), `rtseg play` and `rtseg info`, with the
reading of a topic's messages and of rtseg's metadata they share. No torch, no numpy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rtseg.errors import RtsegError

log = logging.getLogger(__name__)
RTSEG_METADATA = "rtseg"  # the name of rtseg record's metadata record
_CLASSES = "classes "  # its key for a classes topic's names: "classes /NAME/classes"


@dataclass(frozen=True)
class TopicCount:
    """One channel of a recording: topic, ROS type, message count, first and last log time
    in ns; `camera` is False for a mask or overlay topic of `rtseg record` (bag_source)."""

    topic: str
    type: str
    count: int
    start_ns: int
    end_ns: int
    camera: bool = True

    @property
    def fps(self) -> float | None:
        """Average rate, None when the topic has fewer than two messages or no span."""
        span = self.end_ns - self.start_ns
        return (self.count - 1) * 1e9 / span if self.count > 1 and span > 0 else None

    def merge(self, other: TopicCount) -> TopicCount:
        """The same topic over two files of a split recording."""
        return TopicCount(self.topic, self.type, self.count + other.count,
                          min(self.start_ns, other.start_ns), max(self.end_ns, other.end_ns),
                          self.camera and other.camera)


@dataclass(frozen=True)
class FileCensus:
    """One MCAP file: its bytes, its topics, its metadata records (name -> key -> value;
    those of a complete file only: they sit at its end) and whether it is complete."""

    path: Path
    size: int
    topics: tuple[TopicCount, ...]
    metadata: dict[str, dict[str, str]]
    complete: bool


def usable_summary(reader):
    """The file's summary when it has an index to read by, else None (a torn footer too)."""
    try:
        summary = reader.get_summary()
    except Exception:  # noqa: BLE001  (a torn footer: the file is read from the start)
        return None
    ok = summary is not None and summary.statistics is not None and summary.chunk_indexes
    return summary if ok else None


def classes_key(topic: str) -> str:
    """The key of `topic`'s class names (a JSON list) in rtseg's metadata record."""
    return _CLASSES + topic


def recorded_classes(metadata: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """The class names of each classes topic in rtseg's metadata record, by topic."""
    return {key.removeprefix(_CLASSES): tuple(json.loads(value))
            for key, value in metadata.items() if key.startswith(_CLASSES)}


def topic_messages(file, topics: list[str], decoded: bool = False) -> Iterator[tuple]:
    """The messages of `topics` in one open MCAP file: by its index in log-time order, or,
    in a file without a usable index (cut short), in the order written (sorting it would
    read the whole file first). Yields (schema, channel, message), with the ROS 2 message
    decoded by mcap_ros2 as a fourth item when `decoded`."""
    from mcap.reader import NonSeekingReader, make_reader

    factories = []
    if decoded:
        from mcap_ros2.decoder import DecoderFactory

        factories = [DecoderFactory()]
    reader = make_reader(file, decoder_factories=factories)
    indexed = usable_summary(reader) is not None
    if not indexed:
        file.seek(0)
        reader = NonSeekingReader(file, decoder_factories=factories)
    iterate = reader.iter_decoded_messages if decoded else reader.iter_messages
    yield from iterate(topics=topics, log_time_order=indexed)


def file_census(path: Path) -> FileCensus:
    """The census of one MCAP file; RtsegError for a file that is not MCAP."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    with path.open("rb") as file:
        try:
            reader = make_reader(file)  # reads the magic bytes
        except (McapError, ValueError, EOFError) as error:
            raise RtsegError(f"{path} is not a readable MCAP file ({error}); check it "
                             "with `mcap info`") from error
        summary = usable_summary(reader)
        if summary is None:
            return FileCensus(path, path.stat().st_size, tuple(_by_scanning(file, path)), {},
                              False)
        metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    return FileCensus(path, path.stat().st_size, tuple(_from_summary(summary)), metadata, True)


def merged_topics(censuses: Iterable[FileCensus]) -> list[TopicCount]:
    """The topics of a recording's files, each merged over the files, in order of first
    appearance."""
    merged: dict[str, TopicCount] = {}
    for census in censuses:
        for topic in census.topics:
            merged[topic.topic] = (merged[topic.topic].merge(topic) if topic.topic in merged
                                   else topic)
    return list(merged.values())


def _from_summary(summary) -> list[TopicCount]:
    stats = summary.statistics
    found = []
    for channel_id, channel in summary.channels.items():
        schema = summary.schemas.get(channel.schema_id)
        count = stats.channel_message_counts.get(channel_id, 0)
        chunks = [c for c in summary.chunk_indexes if channel_id in c.message_index_offsets]
        start = min((c.message_start_time for c in chunks), default=0)
        end = max((c.message_end_time for c in chunks), default=0)
        found.append(TopicCount(channel.topic, schema.name if schema else "", count, start,
                                end))
    return found


def _by_scanning(file, path: Path) -> list[TopicCount]:
    """The topics of a file without a summary (a recording cut short), read to its end."""
    from mcap.reader import NonSeekingReader

    file.seek(0)
    seen: dict[str, list] = {}
    try:
        for schema, channel, message in NonSeekingReader(file).iter_messages(
                log_time_order=False):
            entry = seen.setdefault(channel.topic, [schema.name if schema else "", 0,
                                                    message.log_time, message.log_time])
            entry[1] += 1
            entry[2] = min(entry[2], message.log_time)
            entry[3] = max(entry[3], message.log_time)
    except Exception as error:  # noqa: BLE001  (cut short: what was read counts)
        log.warning("%s ends early (%s: %s); using what precedes it",
                    path, type(error).__name__, error)
    return [TopicCount(topic, kind, count, first, last)
            for topic, (kind, count, first, last) in seen.items()]
