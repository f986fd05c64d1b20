"""The one exception type users see: a message naming the problem and what to do."""


class RtsegError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits non-zero."""


def type_name(value: object) -> str:
    """The name of `value`'s type, for messages that say what was given instead."""
    return value.__class__.__name__
