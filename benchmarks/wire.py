"""A loopback packet capture as the judge of rtbench's latency: when did each probe envelope reach a socket?

    python benchmarks/wire.py CAPTURE.pcap --port 3001 [--run-id ID] [--json]

Reads a classic pcap file (what ``tcpdump -w`` writes; microsecond or nanosecond timestamps, either byte
order; link types Ethernet, which Linux uses for ``lo``, Linux cooked SLL and SLL2, BSD loopback NULL and
raw IP), IPv4 and IPv6, TCP. No third-party parser: the point is an independent measurement.

For every TCP connection to one of the target's ports, the bytes *from the target to the client* are put
back in order by sequence number (retransmitted and duplicated bytes are ignored; bytes that arrive ahead
of a hole become readable, and are timed, when the hole is filled; a hole the capture missed but the
receiver acknowledged is skipped and counted). Every probe envelope ``rtb1|run|publisher|seq|due_ns|xx..``
found in that byte stream is timed by the capture time of the packet holding the envelope's **last byte**
(the last ``x`` of its padding). The frame's own trailer (``"]``, ``\\n\\n``, ``"}``: a few bytes) is
almost always in the same packet; when it is not, the wire time is the earlier one, which makes the
comparison with the reported time stricter, never looser (``trailer_split`` counts those envelopes).
A retransmission does not move a time: on ``lo`` tcpdump sees a packet as it is sent, and the first
copy is what the socket got unless the kernel dropped it on the way in (benchmarks/wire_vs_reported.py
reports those input-backlog drops; on loopback, retransmissions are otherwise spurious tail-loss probes
that the receiver answers with a duplicate SACK). Framing is not parsed: an envelope must be contiguous
in the stream (true for unfragmented, uncompressed websocket frames, SSE events and HTTP bodies written
in one piece; the reference targets turn permessage-deflate off).

Publishers are left out: a connection on which the client *sent* an envelope (websocket frames from the
client are masked, so they are unmasked first) is a publisher's connection, and what it receives is not a
subscriber's delivery. Wire latency = capture time - due_ns, once per (connection, publisher, seq): the
first arrival. Percentiles come from harness.measure.hist, the same HdrHistogram shape and microsecond rounding
as the recorder's, so they compare one to one with summary.json's ``latency_ms``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import mmap
import re
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from harness.measure import hist  # noqa: E402

# -- pcap ---------------------------------------------------------------------------------------------
MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAGIC_PCAPNG = 0x0A0D0D0A
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_TCP = 6
IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options; 44 (fragment) is skipped
AF_INET6_VALUES = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
SEQ_MOD = 1 << 32

# -- envelope -----------------------------------------------------------------------------------------
_ID = rb"[0-9A-Za-z_.:-]{1,64}"
HEAD_PATTERN = rb"rtb1\|(" + _ID + rb")\|(" + _ID + rb")\|(\d{1,19})\|(\d{1,20})\|"
ENVELOPE = re.compile(HEAD_PATTERN + rb"x*")
HEAD = re.compile(HEAD_PATTERN)
MAX_HEAD = 5 + 65 + 65 + 20 + 21  # longest head the pattern accepts: a shorter tail cannot hide one


class CaptureError(ValueError):
    """The file is not a classic pcap capture this reader understands."""


class Segment(NamedTuple):
    """One captured TCP segment; addresses are packed bytes (4 for IPv4, 16 for IPv6)."""

    ts_ns: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    truncated: bool  # the capture holds fewer payload bytes than the IP header says were sent


@dataclass
class CaptureStats:
    """What the reader saw and set aside: the numbers that say whether the wire figures can be trusted."""

    precision: str = ""
    linktype: int = 0
    packets: int = 0
    tcp_segments: int = 0
    not_tcp: int = 0  # other protocols, fragments, unknown link layers
    truncated_packets: int = 0  # snap length shorter than the segment: its bytes count as a hole
    truncated_tail: bool = False  # the file ends inside a record (capture not stopped cleanly)
    connections: int = 0
    publisher_connections: int = 0
    envelopes: int = 0  # found on subscriber connections, duplicates and other runs included
    excluded_publisher_envelopes: int = 0
    duplicates: int = 0  # the same (publisher, seq) again on one connection
    other_runs: int = 0
    retransmitted_bytes: int = 0
    hole_bytes: int = 0  # acknowledged by the receiver but never captured (kernel drops)
    trailer_split: int = 0  # the byte after the envelope came in a later packet
    unterminated: int = 0  # the stream ended right after the envelope's padding
    out_of_range: int = 0  # latencies the histogram refused (over an hour)


@dataclass(frozen=True, slots=True)
class Delivery:
    """First arrival of one envelope on one subscriber connection."""

    connection: int  # index of the connection, in order of its first packet
    publisher: str
    seq: int
    due_ns: int
    capture_ns: int

    @property
    def latency_ns(self) -> int:
        return self.capture_ns - self.due_ns


@dataclass
class WireReport:
    deliveries: list[Delivery]
    stats: CaptureStats

    def histogram(self) -> Any:
        """Microseconds, floored and at least 1, as harness.measure.recorder records them."""
        histogram, refused = hist.new(), 0
        for delivery in self.deliveries:
            us = delivery.latency_ns // 1000
            if not histogram.record_value(us if us > 0 else 1):
                refused += 1
        self.stats.out_of_range = refused
        return histogram

    def summary(self) -> dict[str, Any]:
        """summary.json's ``latency_ms`` block for the wire, plus the reader's counters."""
        return {"latency_ms": hist.latency_summary(self.histogram()), "capture": vars(self.stats).copy()}


def _link_offset(linktype: int, frame: bytes) -> tuple[int, int] | None:
    """(offset of the IP header, IP version) or None when the frame carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, int.from_bytes(frame[12:14], "big")
        while ethertype in ETHERTYPE_VLAN and len(frame) >= offset + 4:
            ethertype = int.from_bytes(frame[offset + 2 : offset + 4], "big")
            offset += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        offset, ethertype = 16, int.from_bytes(frame[14:16], "big")
    elif linktype == LINKTYPE_LINUX_SLL2:
        offset, ethertype = 20, int.from_bytes(frame[0:2], "big")
    elif linktype == LINKTYPE_NULL:
        family = int.from_bytes(frame[0:4], "little")
        if family > 0xFFFF:  # written on a big-endian host
            family = int.from_bytes(frame[0:4], "big")
        return (4, 4) if family == 2 else (4, 6) if family in AF_INET6_VALUES else None
    elif linktype == LINKTYPE_RAW:
        return (0, frame[0] >> 4) if frame else None
    else:
        return None
    if ethertype == ETHERTYPE_IPV4:
        return offset, 4
    if ethertype == ETHERTYPE_IPV6:
        return offset, 6
    return None


def _tcp(ts_ns: int, frame: bytes, offset: int, version: int) -> Segment | None:
    """Decode IPv4/IPv6 + TCP at ``offset``; None for anything else (fragments included)."""
    if version == 4:
        if len(frame) < offset + 20 or frame[offset] >> 4 != 4:
            return None
        ihl = (frame[offset] & 0x0F) * 4
        total = int.from_bytes(frame[offset + 2 : offset + 4], "big")
        fragment = int.from_bytes(frame[offset + 6 : offset + 8], "big")
        if frame[offset + 9] != IPPROTO_TCP or fragment & 0x3FFF:  # more-fragments flag or an offset
            return None
        src, dst = frame[offset + 12 : offset + 16], frame[offset + 16 : offset + 20]
        tcp_at, ip_end = offset + ihl, offset + total
    elif version == 6:
        if len(frame) < offset + 40 or frame[offset] >> 4 != 6:
            return None
        next_header = frame[offset + 6]
        ip_end = offset + 40 + int.from_bytes(frame[offset + 4 : offset + 6], "big")
        src, dst = frame[offset + 8 : offset + 24], frame[offset + 24 : offset + 40]
        tcp_at = offset + 40
        while next_header in IPV6_EXTENSIONS and len(frame) >= tcp_at + 8:
            next_header = frame[tcp_at]
            tcp_at += (frame[tcp_at + 1] + 1) * 8
        if next_header != IPPROTO_TCP:
            return None
    else:
        return None
    if len(frame) < tcp_at + 20:
        return None
    sport, dport, seq, ack, offset_byte, flags = struct.unpack_from("!HHIIBB", frame, tcp_at)
    data_at = tcp_at + (offset_byte >> 4) * 4
    truncated = len(frame) < ip_end
    payload = b"" if truncated else bytes(frame[data_at:ip_end])
    return Segment(ts_ns, bytes(src), sport, bytes(dst), dport, seq, ack, flags, payload, truncated)


def iter_segments(data: bytes | memoryview | mmap.mmap, stats: CaptureStats | None = None) -> Iterator[Segment]:
    """Every TCP segment in a classic pcap capture, in file order."""
    stats = stats if stats is not None else CaptureStats()
    if len(data) < 24:
        raise CaptureError("too short for a pcap global header")
    magic_le = int.from_bytes(data[0:4], "little")
    if magic_le in (MAGIC_US, MAGIC_NS):
        order = "<"
    elif int.from_bytes(data[0:4], "big") in (MAGIC_US, MAGIC_NS):
        order = ">"
    elif magic_le == MAGIC_PCAPNG:
        raise CaptureError("pcapng is not supported: capture with tcpdump -w (classic pcap)")
    else:
        raise CaptureError(f"not a pcap file (magic {bytes(data[0:4]).hex()})")
    nano = struct.unpack_from(order + "I", data, 0)[0] == MAGIC_NS
    stats.precision = "ns" if nano else "us"
    scale = 1 if nano else 1000
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF  # the upper bits describe an FCS
    stats.linktype = linktype
    record = struct.Struct(order + "IIII")
    position, end = 24, len(data)
    while position < end:
        if position + 16 > end:
            stats.truncated_tail = True
            return
        seconds, fraction, captured, _ = record.unpack_from(data, position)
        position += 16
        if position + captured > end:
            stats.truncated_tail = True
            return
        frame = bytes(data[position : position + captured])
        position += captured
        stats.packets += 1
        link = _link_offset(linktype, frame)
        segment = _tcp(seconds * 1_000_000_000 + fraction * scale, frame, *link) if link else None
        if segment is None:
            stats.not_tcp += 1
            continue
        stats.tcp_segments += 1
        if segment.truncated:
            stats.truncated_packets += 1
        yield segment


# -- one direction of a connection ------------------------------------------------------------------
class _Sink:
    def feed(self, data: bytes, ts_ns: int) -> None:
        raise NotImplementedError

    def hole(self) -> None:
        """The stream skipped bytes the capture never saw: whatever was half-read is unusable."""
        raise NotImplementedError


class _Stream:
    """Puts one direction's bytes back in order; offsets count from the first byte after the SYN."""

    def __init__(self, sink: _Sink, stats: CaptureStats) -> None:
        self.sink, self.stats = sink, stats
        self.base: int | None = None  # sequence number of offset 0
        self.syn_seq: int | None = None
        self.next = 0  # offset of the next byte the reader of the socket would get
        self.fin_at: int | None = None
        self.ahead: dict[int, tuple[bytes, int]] = {}  # start offset -> (bytes, capture time)

    def _offset(self, seq: int) -> int:
        assert self.base is not None
        relative = (seq - self.base) % SEQ_MOD
        delta = (relative - self.next % SEQ_MOD + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2
        return self.next + delta

    def segment(self, seq: int, flags: int, payload: bytes, ts_ns: int) -> None:
        if flags & TCP_SYN:
            if self.base is None:
                self.base, self.syn_seq = (seq + 1) % SEQ_MOD, seq
            seq += 1
        elif self.base is None:
            self.base = seq  # capture began mid-connection: its first segment marks offset 0
        start = self._offset(seq)
        end = start + len(payload)
        if flags & TCP_FIN:
            self.fin_at = end
        if not payload:
            return
        if end <= self.next:
            self.stats.retransmitted_bytes += len(payload)
            return
        if start > self.next:
            held = self.ahead.get(start)
            if held is None or len(held[0]) < len(payload):
                self.ahead[start] = (payload, ts_ns)
            return
        if start < self.next:
            self.stats.retransmitted_bytes += self.next - start
        self._deliver(payload[self.next - start :], ts_ns)
        self._drain(ts_ns)

    def _deliver(self, data: bytes, ts_ns: int) -> None:
        self.next += len(data)
        self.sink.feed(data, ts_ns)

    def _drain(self, ts_ns: int) -> None:
        """Bytes held ahead of a hole become readable now, at the time of the packet that filled it."""
        while self.ahead:
            start = min(self.ahead)
            if start > self.next:
                return
            data, _ = self.ahead.pop(start)
            if start + len(data) > self.next:
                self._deliver(data[self.next - start :], ts_ns)

    def acknowledged(self, ack: int, ts_ns: int) -> None:
        """The peer has every byte before ``ack``: any still missing were delivered but not captured."""
        if self.base is None:
            return
        upto = self._offset(ack)
        if self.fin_at is not None:
            upto = min(upto, self.fin_at)  # the FIN takes a sequence number but is no data
        while upto > self.next:
            resume = min(min(self.ahead, default=upto), upto)
            self.stats.hole_bytes += resume - self.next
            self.next = resume
            self.sink.hole()
            self._drain(ts_ns)


class _EnvelopeScanner(_Sink):
    """Finds envelopes in the target->client bytes and times each by the packet holding its last byte."""

    def __init__(self, on_envelope: Any, stats: CaptureStats) -> None:
        self.on_envelope, self.stats = on_envelope, stats
        self.buf = bytearray()
        self.buf_start = 0  # stream offset of buf[0]
        self.starts: list[int] = []  # stream offset where each fed chunk begins ...
        self.stamps: list[int] = []  # ... and its capture time
        self.search_from = 0
        self.fed = 0

    def _stamp_index(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def feed(self, data: bytes, ts_ns: int) -> None:
        self.starts.append(self.fed)
        self.stamps.append(ts_ns)
        self.fed += len(data)
        self.buf += data
        self._scan(final=False)

    def hole(self) -> None:
        self.buf.clear()
        self.starts.clear()
        self.stamps.clear()
        self.buf_start = self.search_from = self.fed  # offsets here count fed bytes only, holes left out

    def finish(self) -> None:
        self._scan(final=True)

    def _scan(self, final: bool) -> None:
        buf, position = self.buf, self.search_from - self.buf_start
        pending: int | None = None
        while True:
            match = ENVELOPE.search(buf, position)
            if match is None:
                break
            if match.end() == len(buf) and not final:  # the padding may go on in the next packet
                pending = match.start()
                break
            last = self.buf_start + match.end() - 1
            index = self._stamp_index(last)
            if match.end() == len(buf):
                self.stats.unterminated += 1
            elif self._stamp_index(last + 1) != index:
                self.stats.trailer_split += 1
            run, publisher, seq, due = match.groups()
            self.on_envelope(run.decode(), publisher.decode(), int(seq), int(due), self.stamps[index])
            position = match.end()
        keep = pending if pending is not None else max(position, len(buf) - MAX_HEAD)
        if keep > 0:
            del buf[:keep]
            self.buf_start += keep
            first = max(0, self._stamp_index(self.buf_start))
            del self.starts[:first], self.stamps[:first]
        self.search_from = self.buf_start


class _SentEnvelopeDetector(_Sink):
    """Did the client send an envelope? Plain bytes, or the unmasked payloads of its websocket frames."""

    def __init__(self) -> None:
        self.found = False
        self.mode = ""  # "" until the first request line is seen, then "raw", "ws" or "lost"
        self.pending = bytearray()
        self.tail = b""

    def feed(self, data: bytes, ts_ns: int) -> None:
        if self.found or self.mode == "lost":
            return
        if self.mode == "ws":
            self.pending += data
            self._frames()
            return
        if self.mode == "raw":
            self._look(data)
            return
        self.pending += data
        if not self.pending.startswith(b"GET "[: len(self.pending)]):
            self.mode = "raw"
        elif (end := self.pending.find(b"\r\n\r\n")) >= 0:
            header = bytes(self.pending[:end]).lower()
            self.mode = "ws" if b"upgrade: websocket" in header else "raw"
            del self.pending[: end + 4]
        else:
            return
        rest = bytes(self.pending)
        self.pending.clear()
        self.feed(rest, ts_ns)

    def hole(self) -> None:
        self.tail = b""
        if self.mode == "ws":
            self.mode = "lost"  # frame boundaries are gone; nothing more can be unmasked

    def _look(self, data: bytes) -> None:
        text = self.tail + data
        if HEAD.search(text):
            self.found = True
        self.tail = text[-MAX_HEAD:]

    def _frames(self) -> None:
        buf = self.pending
        while len(buf) >= 2:
            masked, length = buf[1] & 0x80, buf[1] & 0x7F
            at = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, at = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, at = int.from_bytes(buf[2:10], "big"), 10
            key_at, at = at, at + (4 if masked else 0)
            if len(buf) < at + length:
                return
            payload = bytes(buf[at : at + length])
            if masked:
                payload = _unmask(payload, bytes(buf[key_at : key_at + 4]))
            del buf[: at + length]
            self._look(payload)
            if self.found:
                return


def _unmask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    size = len(payload)
    mask = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")


@dataclass
class _Connection:
    index: int
    to_client: _Stream
    to_server: _Stream
    scanner: _EnvelopeScanner
    sent: _SentEnvelopeDetector
    arrivals: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # -> (due, capture)
    duplicates: int = 0
    other_runs: int = 0


def read_capture(source: str | Path | bytes, server_ports: Iterable[int], run_id: str | None = None) -> WireReport:
    """Wire deliveries in a capture: envelopes the target sent to subscriber connections, first arrivals.

    ``server_ports``: the target's TCP port(s); the other end of a connection is the client.
    ``run_id``: keep only envelopes of that run (summary.json's ``run_id``); None keeps every run.
    """
    ports = frozenset(server_ports)
    stats = CaptureStats()
    connections: dict[tuple[bytes, int, bytes, int], _Connection] = {}
    finished: list[_Connection] = []

    def open_connection(key: tuple[bytes, int, bytes, int]) -> _Connection:
        index = stats.connections
        stats.connections += 1
        conn: _Connection

        def arrived(run: str, publisher: str, seq: int, due_ns: int, capture_ns: int) -> None:
            if run_id is not None and run != run_id:
                conn.other_runs += 1
            elif (publisher, seq) in conn.arrivals:
                conn.duplicates += 1
            else:
                conn.arrivals[(publisher, seq)] = (due_ns, capture_ns)

        scanner = _EnvelopeScanner(arrived, stats)
        sent = _SentEnvelopeDetector()
        conn = _Connection(index, _Stream(scanner, stats), _Stream(sent, stats), scanner, sent)
        connections[key] = conn
        return conn

    def read(data: bytes | memoryview | mmap.mmap) -> None:
        for seg in iter_segments(data, stats):
            if seg.sport in ports:
                key, from_server = (seg.dst, seg.dport, seg.src, seg.sport), True
            elif seg.dport in ports:
                key, from_server = (seg.src, seg.sport, seg.dst, seg.dport), False
            else:
                continue
            conn = connections.get(key)
            new_syn = seg.flags & TCP_SYN and not seg.flags & TCP_ACK and not from_server
            if conn is not None and new_syn and conn.to_server.syn_seq not in (None, seg.seq):
                finished.append(conn)  # the 4-tuple was reused by a new connection
                conn = None
            if conn is None:
                conn = open_connection(key)
            forward, backward = (conn.to_client, conn.to_server) if from_server else (conn.to_server, conn.to_client)
            forward.segment(seg.seq, seg.flags, seg.payload, seg.ts_ns)
            if seg.flags & TCP_ACK:
                backward.acknowledged(seg.ack, seg.ts_ns)

    if isinstance(source, bytes):
        read(source)
    else:
        with open(source, "rb") as handle:
            if Path(source).stat().st_size == 0:
                raise CaptureError(f"{source} is empty")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                read(mapped)
    deliveries: list[Delivery] = []
    for conn in sorted([*finished, *connections.values()], key=lambda c: c.index):
        conn.scanner.finish()
        stats.envelopes += len(conn.arrivals) + conn.duplicates + conn.other_runs
        if conn.sent.found:
            stats.publisher_connections += 1
            stats.excluded_publisher_envelopes += len(conn.arrivals) + conn.duplicates + conn.other_runs
            continue
        stats.duplicates += conn.duplicates
        stats.other_runs += conn.other_runs
        deliveries.extend(Delivery(conn.index, pub, seq, due, cap) for (pub, seq), (due, cap) in conn.arrivals.items())
    return WireReport(deliveries, stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", help="classic pcap file (tcpdump -w)")
    parser.add_argument("--port", type=int, action="append", required=True, help="the target's port (repeatable)")
    parser.add_argument("--run-id", help="keep only this run's envelopes (summary.json run_id)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        summary = read_capture(args.capture, args.port, args.run_id).summary()
    except (CaptureError, OSError) as exc:
        sys.stderr.write(f"wire: error: {exc}\n")
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        lat = summary["latency_ms"]
        print("wire latency ms: " + "  ".join(f"{k} {lat[k]}" for k in ("count", "p50", "p90", "p95", "p99", "max")))
        print("capture: " + ", ".join(f"{k} {v}" for k, v in summary["capture"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
