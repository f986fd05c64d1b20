"""The listening TCP socket of an HTTP command (`rtseg view`, `rtseg serve`), bound before
anything else starts, so that a busy port is a one-line error naming it; the same checks
and messages for other servers (`rtseg foxglove`)."""

from __future__ import annotations

import errno
import ipaddress
import socket
from http.server import ThreadingHTTPServer

from rtseg.errors import RtsegError


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name or interface: not provably loopback
        return False


def check_bind(host: str, port: int, *, allow_remote: bool = False,
               flags: tuple[str, str] = ("--bind", "--port")) -> str:
    """The address to bind for `--bind host --port port` (localhost -> 127.0.0.1, IPv6
    without brackets); `flags`: the options' names in the messages.

    Raises:
        RtsegError: a port outside 0..65535, or a non-loopback `host` without
            `allow_remote`.
    """
    bind_flag, port_flag = flags
    if not 0 <= port <= 65535:
        raise RtsegError(f"{port_flag} {port} is outside 0..65535")
    if not allow_remote and not is_loopback(host):
        raise RtsegError(f"{bind_flag} {host} is not a loopback address: it lets other "
                         "machines connect; pass --allow-remote if that is intended, or "
                         "bind 127.0.0.1")
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


def port_in_use(port: int, host: str, flag: str = "--port") -> RtsegError:
    """The one-line error for a port another program holds."""
    return RtsegError(f"port {port} is in use on {host}: stop the program holding it or "
                      f"pick another with {flag}")


def host_url(scheme: str, host: str, port: int) -> str:
    """``SCHEME://HOST:PORT`` (an IPv6 host in brackets)."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def listen_socket(host: str, port: int, *, allow_remote: bool = False, backlog: int = 64,
                  flags: tuple[str, str] = ("--bind", "--port")) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: a free port; `getsockname()` tells it) and
    listening; `flags`: the bind and port options' names in the messages.

    Raises:
        RtsegError: a non-loopback `host` without `allow_remote`, a port outside 0..65535,
            a port in use, or an address this machine does not have.
    """
    host = check_bind(host, port, allow_remote=allow_remote, flags=flags)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, host, flags[1]) from None
        raise RtsegError(f"cannot listen on {host}:{port}: {exc.strerror}; use an address "
                         f"of this machine, e.g. {flags[0]} 127.0.0.1") from None
    return sock


class SocketHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer (a thread per connection, daemonic) on a socket that
    `listen_socket` bound and set listening already."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, handler) -> None:
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


def socket_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return host_url("http", host, port)
