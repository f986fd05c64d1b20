"""ZeroMQ CURVE keys for nodes bound beyond loopback (pyzmq's built-in support).

`rtseg keys DIR --name NAME` writes ``DIR/NAME.key`` (public, hand it to subscribers) and
``DIR/NAME.key_secret`` (secret, keep it with the node) in ZeroMQ's certificate format.
A node started with ``--curve-secret NAME.key_secret`` encrypts everything it sends and
talks only to subscribers that know its public key (``--curve-server-key NAME.key``);
with ``--curve-clients DIR`` it also accepts only the client public keys in DIR. Without
the right key a subscriber's handshake fails and it receives nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq

from rtseg.errors import RtsegError


@dataclass(frozen=True)
class KeyPair:
    """Z85-encoded CURVE keys (40 bytes each); `secret` is None for a public-only file."""

    public: bytes
    secret: bytes | None


def write_keys(folder: str | Path, name: str = "node") -> tuple[Path, Path]:
    """Create a key pair in `folder`: (NAME.key public, NAME.key_secret secret)."""
    import zmq.auth

    _check_curve()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if (out / f"{name}{suffix}").exists():
            raise RtsegError(f"{out / (name + suffix)} exists: pick another --name or folder "
                             "(keys are never overwritten)")
    public, secret = zmq.auth.create_certificates(str(out), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def load_keys(path: str | Path, need_secret: bool) -> KeyPair:
    """Read a key file written by `write_keys` (or zmq's create_certificates).

    Raises:
        RtsegError: missing or unreadable file, or no secret key where one is needed.
    """
    import zmq.auth

    _check_curve()
    file = Path(path)
    if not file.is_file():
        raise RtsegError(f"CURVE key file {file} does not exist: create a pair with "
                         "`rtseg keys DIR`")
    try:
        public, secret = zmq.auth.load_certificate(str(file))
    except (ValueError, OSError) as exc:
        raise RtsegError(f"{file} is not a ZeroMQ CURVE key file ({exc}); create one with "
                         "`rtseg keys DIR`") from None
    if need_secret and secret is None:
        raise RtsegError(f"{file} holds only a public key; pass the .key_secret file")
    return KeyPair(public=public, secret=secret)


def make_server(sock: zmq.Socket, secret_file: str | Path) -> None:
    """Turn `sock` (before bind) into a CURVE server with the key pair in `secret_file`."""
    keys = load_keys(secret_file, need_secret=True)
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_client(sock: zmq.Socket, server_key_file: str | Path,
                secret_file: str | Path | None = None) -> None:
    """Make `sock` (before connect) a CURVE client of the server whose public key is in
    `server_key_file`; its own pair from `secret_file`, or a fresh one."""
    server = load_keys(server_key_file, need_secret=False)
    if secret_file is not None:
        own = load_keys(secret_file, need_secret=True)
        public, secret = own.public, own.secret
    else:
        public, secret = zmq.curve_keypair()
    sock.curve_serverkey = server.public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def start_authenticator(context: zmq.Context, clients_dir: str | Path):
    """A ZAP handler thread that admits only the client public keys in `clients_dir`.

    Returns the started `ThreadAuthenticator`; call `.stop()` when the socket closes.
    """
    from zmq.auth.thread import ThreadAuthenticator

    folder = Path(clients_dir)
    if not folder.is_dir() or not any(folder.glob("*.key")):
        raise RtsegError(f"--curve-clients {folder} holds no client public keys (*.key): "
                         "create them with `rtseg keys DIR --name CLIENT`")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(folder))
    return auth


def _check_curve() -> None:
    if not zmq.has("curve"):
        raise RtsegError("this libzmq was built without CURVE support: install pyzmq's "
                         "wheel from PyPI (`pip install --force-reinstall pyzmq`)")
