"""The one exception type users see: a message naming the problem and what to do."""


class RtsegError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits non-zero."""
