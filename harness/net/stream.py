"""The measuring transport: one TCP connection whose reads carry the kernel's receive time.

Why: a delivery's arrival is when its bytes reached the subscriber's socket (DESIGN rule 2), not when a
busy Python pipeline got round to it. Each connection is a non-blocking native socket with
``SO_TIMESTAMPNS`` on, read with ``recvmsg`` from the loop's reader callback: the ancillary data holds the
time the kernel received the last segment of that read. When the generator falls behind, frames wait in
the socket buffer with their receive time intact.

Each read takes everything queued. The stamp is never early, but it is exact only for the bytes that
ended the read: Linux merges segments that wait unread in a socket's receive queue into one buffer
(``tcp_try_coalesce``) stamped with the latest segment's arrival, so reading one frame at a time would not
help. A message that is not the last thing in its read therefore carries a *shared* stamp, the arrival of
bytes behind it (exact when they came together, late by up to the gap when the generator read late); the
protocol above counts those with :func:`note_shared`, and the summary reports them. In the steady state
of a push subscriber each read holds exactly one message. When the kernel gives no stamp the read's own
time is used (``rx_clock`` says ``read``).

TLS runs over the same reads through ``ssl.MemoryBIO``: decrypted bytes carry the stamp of the read that
completed their record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import time
from typing import Protocol

SO_TIMESTAMPNS = 35  # Linux; Python has no constant
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
READ_SIZE = 256 * 1024
TLS_READ_SIZE = 64 * 1024
CLOCK_KERNEL, CLOCK_READ = "kernel", "read"


class StreamProtocol(Protocol):
    """What a stream feeds: bytes with their arrival time (ns since the epoch), then the end."""

    def data_received(self, data: bytes, rx_ns: int) -> None: ...

    def connection_lost(self, reason: str) -> None: ...


class RxStamps:
    """This process's reads: how many, how many the kernel did not stamp, and how many messages shared their
    read's stamp with bytes behind them (counted from ``shared_since_ns`` on: the steady state, not the
    connection storm of ramp-up). Process-wide because the generator reports per process."""

    __slots__ = ("reads", "shared", "shared_since_ns", "unstamped")

    def __init__(self) -> None:
        self.reads = self.unstamped = self.shared = self.shared_since_ns = 0

    def snapshot(self) -> dict[str, int]:
        return {"reads": self.reads, "unstamped_reads": self.unstamped, "shared_stamps": self.shared}


RX_STAMPS = RxStamps()


def note_shared(messages: int, rx_ns: int) -> None:
    """``messages`` completed in a read that went on past them: their stamp is the later bytes' arrival."""
    if rx_ns >= RX_STAMPS.shared_since_ns:
        RX_STAMPS.shared += messages


def native_socket(family: int, type_: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A real, non-blocking socket: the bridge loop runs on a native thread under gevent's patching."""
    try:
        from gevent import monkey

        cls = monkey.get_original("socket", "socket")
    except ImportError:
        cls = socket.socket
    sock: socket.socket = cls(family, type_, proto)
    sock.setblocking(False)
    return sock


class ConnectError(ConnectionError):
    """The connection could not be made; the message is the user's reason."""


async def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """Resolve and connect (first address that answers) within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            last: OSError | None = None
            for family, type_, proto, _name, address in infos:
                sock = native_socket(family, type_, proto)
                try:
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    last = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                return sock
    except TimeoutError:
        raise ConnectError(f"connect to {host}:{port} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise ConnectError(f"connect to {host}:{port} failed: {_reason(exc)}") from None
    raise ConnectError(f"connect to {host}:{port} failed: {_reason(last) if last else 'no address'}")


def _reason(exc: OSError) -> str:
    """The system's words for a failed call ("Connection refused"), not asyncio's "Connect call failed (...)"."""
    if exc.errno and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


def enable_timestamps(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    hold_timestamping()
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True


_holder: socket.socket | None = None


def hold_timestamping() -> None:
    """Keep the kernel's receive timestamping on for the rest of the process (one idle socket asks for it).

    Why: Linux stamps received packets only while some socket wants stamps, and switches this on and off
    from a work queue, later; packets that arrive before the switch-on carry no stamp. Without a holder,
    every time the last timestamped socket closes (all subscribers dropped by a restarting server) the
    first reads of the reconnected sockets can come unstamped: about 1 first read in 10 on a 2-core VM.
    """
    global _holder
    if _holder is not None:
        return
    holder = native_socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        holder.close()
        return
    _holder = holder


def timestamps_ready(timeout_s: float = 1.0) -> bool:
    """Hold timestamping on and wait (blocking, once, at startup) until the kernel stamps loopback packets.

    The first switch-on is deferred too: a process that connects right away may read its first bytes
    unstamped. Returns False when no stamp came within ``timeout_s`` (then reads fall back to their time).
    """
    hold_timestamping()
    receiver = native_socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = native_socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.1)
        deadline = time.monotonic() + timeout_s
        while True:
            sender.sendto(b"t", receiver.getsockname())
            with contextlib.suppress(TimeoutError):
                _data, ancillary, _flags, _addr = receiver.recvmsg(1, _ANCILLARY)
                if ancillary and ancillary[0][1] == SCM_TIMESTAMPNS:
                    return True
            if time.monotonic() >= deadline:
                return False
    except OSError:
        return False
    finally:
        receiver.close()
        sender.close()


def client_tls_context(verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Stream:
    """One connected socket, read on the loop's reader callback; writes go straight to the socket."""

    def __init__(
        self,
        sock: socket.socket,
        tls: ssl.SSLObject | None = None,
        tls_in: ssl.MemoryBIO | None = None,
        tls_out: ssl.MemoryBIO | None = None,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = asyncio.get_running_loop()
        self.rx_clock = CLOCK_KERNEL if enable_timestamps(sock) else CLOCK_READ
        self.unstamped_reads = 0
        self._tls, self._tls_in, self._tls_out = tls, tls_in, tls_out
        self._protocol: StreamProtocol | None = None
        self._pending = bytearray()  # unsent bytes while the socket is full
        self._writing = False
        self.closed = False

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Stream:
        """Connect (and run the TLS handshake) within ``timeout`` seconds."""
        sock = await open_socket(host, port, timeout)
        if tls is None:
            return cls(sock)
        tls_in, tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls_object = tls.wrap_bio(tls_in, tls_out, server_side=False, server_hostname=server_hostname or host)
        try:
            async with asyncio.timeout(timeout):
                await _tls_handshake(sock, tls_object, tls_in, tls_out)
        except TimeoutError:
            sock.close()
            raise ConnectError(f"TLS handshake with {host}:{port} timed out after {timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise ConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, tls_object, tls_in, tls_out)

    def start(self, protocol: StreamProtocol) -> None:
        """Begin reading into ``protocol`` (every read from here on goes to it)."""
        self._protocol = protocol
        if not self.closed:
            self.loop.add_reader(self.fd, self._on_readable)
            if self._tls_in is not None and self._tls_in.pending:
                self.loop.call_soon(self._drain_tls, time.time_ns())

    # -- reading (the hot path) ------------------------------------------------------------------------
    def _on_readable(self) -> None:
        protocol = self._protocol
        assert protocol is not None
        try:
            data, ancillary, _flags, _addr = self.sock.recvmsg(READ_SIZE, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"connection error: {exc.strerror or exc}")
            return
        if not data:
            self._lost("connection closed by the server")
            return
        RX_STAMPS.reads += 1
        if ancillary and ancillary[0][1] == SCM_TIMESTAMPNS:
            seconds, nanoseconds = _TIMESPEC.unpack_from(ancillary[0][2])
            rx_ns = seconds * 1_000_000_000 + nanoseconds
        else:
            rx_ns = time.time_ns()
            self.unstamped_reads += 1
            RX_STAMPS.unstamped += 1
        if self._tls_in is None:
            protocol.data_received(data, rx_ns)
        else:
            self._tls_in.write(data)
            self._drain_tls(rx_ns)

    def _drain_tls(self, rx_ns: int) -> None:
        """Decrypt what the reads brought; bytes decrypted before a TLS end or error are delivered first."""
        assert self._tls is not None and self._protocol is not None
        chunks: list[bytes] = []
        ended: str | None = None
        try:
            while True:
                chunk = self._tls.read(TLS_READ_SIZE)
                if not chunk:  # a clean close_notify reads as b"" (no more data raises SSLWantReadError)
                    ended = "TLS session closed by the server"
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            ended = "TLS session closed by the server"
        except ssl.SSLError as exc:
            ended = f"TLS error: {exc}"
        self._flush_tls()
        if chunks and not self.closed:
            self._protocol.data_received(b"".join(chunks), rx_ns)
        if ended is not None:
            self._lost(ended)

    # -- writing -------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self._tls is not None:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                self._lost(f"TLS error: {exc}")
                return
            self._flush_tls()
            return
        self._send(data)

    def _flush_tls(self) -> None:
        assert self._tls_out is not None
        if self._tls_out.pending:
            self._send(self._tls_out.read())

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._pending:
            self._pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(f"send failed: {exc.strerror or exc}")
            return
        if sent < len(data):
            self._pending += data[sent:]
            if not self._writing:
                self._writing = True
                self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"send failed: {exc.strerror or exc}")
            return
        del self._pending[:sent]
        if not self._pending:
            self._writing = False
            self.loop.remove_writer(self.fd)

    # -- ending --------------------------------------------------------------------------------
    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self._teardown()
        if self._protocol is not None:
            self._protocol.connection_lost(reason)

    def cut(self) -> None:
        """Lose the network under this connection, as a cable pulled on the client's side: the socket is
        shut down both ways, so the next read ends the stream through the usual path and the protocol
        hears of it as of any loss (the server sees the connection end too)."""
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close without telling the protocol (the caller asked for it)."""
        if not self.closed:
            self._teardown()

    def _teardown(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.fd)
        if self._writing:
            with contextlib.suppress(Exception):
                self.loop.remove_writer(self.fd)
            self._writing = False
        self.sock.close()


async def _tls_handshake(
    sock: socket.socket, tls: ssl.SSLObject, tls_in: ssl.MemoryBIO, tls_out: ssl.MemoryBIO
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if tls_out.pending:
            await loop.sock_sendall(sock, tls_out.read())
        if done:
            return
        data = await loop.sock_recv(sock, TLS_READ_SIZE)
        if not data:
            raise ConnectError("connection closed during the TLS handshake")
        tls_in.write(data)
