"""benchmarks/wire.py, the capture reader that judges rtbench's latency: pcap bytes written here, by hand."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import wire

T0 = 1_700_000_000 * 1_000_000_000  # capture times are T0 + an offset in ns
SERVER, SUB, SUB2, PUB = 3001, 40001, 40003, 40002
LOCAL4 = bytes([127, 0, 0, 1])
LOCAL6 = bytes(15) + b"\x01"
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def envelope(publisher: str, seq: int, due_offset_ns: int, size: int = 60) -> bytes:
    head = f"rtb1|run1|{publisher}|{seq}|{T0 + due_offset_ns}|".encode()
    return head + b"x" * (size - len(head))


def sio_frame(env: bytes) -> bytes:
    """A server's (unmasked) websocket text frame carrying a Socket.IO event, as the wire has it."""
    text = b'42["message","' + env + b'"]'
    assert len(text) < 126
    return bytes([0x81, len(text)]) + text


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4(segment: bytes, protocol: int = 6) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, protocol, 0, LOCAL4, LOCAL4)
    return header + segment


def ipv6(segment: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(segment), 6, 64, LOCAL6, LOCAL6) + segment


def ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes(12) + struct.pack("!H", ethertype) + packet


def pcap(records: list[tuple[int, bytes]], *, nano: bool, linktype: int = 1, order: str = "<") -> bytes:
    """Classic pcap: global header, then (seconds, fraction, captured length, original length) + frame."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)
    for ts_ns, frame in records:
        fraction = ts_ns % 1_000_000_000 if nano else ts_ns % 1_000_000_000 // 1000
        out += struct.pack(order + "IIII", ts_ns // 1_000_000_000, fraction, len(frame), len(frame)) + frame
    return out


def handshake(client_port: int, client_isn: int, server_isn: int, at: int) -> list[tuple[int, bytes]]:
    return [
        (at, tcp(client_port, SERVER, client_isn, 0, SYN)),
        (at + 10_000, tcp(SERVER, client_port, server_isn, client_isn + 1, SYN | ACK)),
        (at + 20_000, tcp(client_port, SERVER, client_isn + 1, server_isn + 1, ACK)),
    ]


# The subscriber's server ISN sits just below 2**32: its byte stream wraps the sequence space.
SUB_ISN = 0xFFFF_FFF0
FRAME_A = sio_frame(envelope("pubA.0", 0, 100_000_000))
FRAME_B = sio_frame(envelope("pubA.0", 1, 200_000_000))
UPGRADE = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
MASK = b"\x5a\xa5\x0f\xf0"


def masked(frame: bytes) -> bytes:
    payload = frame[2:]
    hidden = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + MASK + hidden


PUB_SENT = masked(sio_frame(envelope("pubA.0", 0, 100_000_000)))


def capture_segments(split: int) -> list[tuple[int, bytes]]:
    """A subscriber that gets an envelope split over two packets, then a retransmit of the second, then a
    whole one; and the publisher, which sends an envelope in a masked frame and gets its echo."""
    s1 = SUB_ISN + 1
    records = handshake(SUB, 1000, SUB_ISN, 0)
    records += handshake(PUB, 2000, 7000, 30_000)
    records += [
        (40_000, tcp(PUB, SERVER, 2001, 7001, PSH | ACK, UPGRADE)),
        (50_000, tcp(SERVER, PUB, 7001, 2001 + len(UPGRADE), PSH | ACK, SWITCHED)),
        (100_000_500, tcp(PUB, SERVER, 2001 + len(UPGRADE), 7001 + len(SWITCHED), PSH | ACK, PUB_SENT)),
        (101_000_000, tcp(SERVER, SUB, s1, 1001, PSH | ACK, FRAME_A[:split])),
        (101_200_300, tcp(SERVER, SUB, s1 + split, 1001, PSH | ACK, FRAME_A[split:])),
        (101_300_000, tcp(SERVER, PUB, 7001 + len(SWITCHED), 2001 + len(UPGRADE) + len(PUB_SENT), PSH | ACK, FRAME_A)),
        (150_000_000, tcp(SERVER, SUB, s1 + split, 1001, PSH | ACK, FRAME_A[split:])),  # retransmit
        (201_500_700, tcp(SERVER, SUB, s1 + len(FRAME_A), 1001, PSH | ACK, FRAME_B)),
        (201_600_000, tcp(SUB, SERVER, 1001, (s1 + len(FRAME_A) + len(FRAME_B)) % 2**32, ACK)),
    ]
    return [(T0 + at, ethernet(ipv4(segment))) for at, segment in records]


def test_the_masked_publisher_frame_hides_its_envelope() -> None:
    assert b"rtb1" not in PUB_SENT  # so finding the publisher really takes unmasking
    assert SUB_ISN + 1 + len(FRAME_A) > 2**32  # and the subscriber's stream really wraps


@pytest.mark.parametrize("split", [30, 60], ids=["split-in-head", "split-in-padding"])
@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_split_envelope_retransmit_and_publisher(nano: bool, split: int) -> None:
    padding_at = FRAME_A.index(b"|x") + 1
    assert (split < padding_at) == (split == 30) and split < len(FRAME_A) - 2
    report = wire.read_capture(pcap(capture_segments(split), nano=nano), [SERVER])

    def stamp(offset_ns: int) -> int:
        return T0 + (offset_ns if nano else offset_ns // 1000 * 1000)

    assert report.deliveries == [
        wire.Delivery(0, "pubA.0", 0, T0 + 100_000_000, stamp(101_200_300)),  # the packet with the last byte
        wire.Delivery(0, "pubA.0", 1, T0 + 200_000_000, stamp(201_500_700)),
    ]
    stats = report.stats
    assert stats.precision == ("ns" if nano else "us")
    assert (stats.connections, stats.publisher_connections, stats.excluded_publisher_envelopes) == (2, 1, 1)
    assert stats.retransmitted_bytes == len(FRAME_A) - split
    assert (stats.duplicates, stats.hole_bytes, stats.trailer_split, stats.unterminated) == (0, 0, 0, 0)
    latency = report.summary()["latency_ms"]
    assert (latency["count"], latency["p50"], latency["p99"], latency["max"]) == (2, 1.2, 1.5, 1.5)


def test_summary_percentiles_are_floored_microseconds_as_the_recorder_records_them(tmp_path: Path) -> None:
    frames = [sio_frame(envelope("p.0", k, k * 1_000_000)) for k in range(3)]
    arrivals = [1_250_999, 1_000_000 + 1_500_400, 2_000_000 + 1_750_000]  # 1.250999, 1.5004 and 1.75 ms late
    records = handshake(SUB, 1, 1, 0)
    offset = 2
    for frame, at in zip(frames, arrivals, strict=True):
        records.append((at, tcp(SERVER, SUB, offset, 2, PSH | ACK, frame)))
        offset += len(frame)
    path = tmp_path / "three.pcap"
    path.write_bytes(pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True))
    summary = wire.read_capture(path, [SERVER]).summary()["latency_ms"]
    assert {k: summary[k] for k in ("count", "min", "p50", "p90", "p99", "max")} == {
        "count": 3,
        "min": 1.25,
        "p50": 1.5,
        "p90": 1.75,
        "p99": 1.75,
        "max": 1.75,
    }


def test_bytes_ahead_of_a_hole_are_timed_when_the_hole_fills() -> None:
    second = sio_frame(envelope("p.0", 1, 0))
    records = [
        *handshake(SUB, 1, 100, 0),
        (3_000_000, tcp(SERVER, SUB, 101 + len(FRAME_A), 2, PSH | ACK, second)),  # arrives first
        (5_000_000, tcp(SERVER, SUB, 101, 2, PSH | ACK, FRAME_A)),
    ]
    report = wire.read_capture(pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True), [SERVER])
    assert [(d.publisher, d.seq, d.capture_ns - T0) for d in report.deliveries] == [
        ("pubA.0", 0, 5_000_000),
        ("p.0", 1, 5_000_000),
    ]


def test_a_hole_the_receiver_acknowledged_is_skipped_and_counted() -> None:
    """The capture missed a packet (a kernel drop) the subscriber did get: skip it, keep the rest."""
    lost, after = sio_frame(envelope("p.0", 0, 0)), sio_frame(envelope("p.0", 1, 0))
    records = [
        *handshake(SUB, 1, 100, 0),
        (2_000_000, tcp(SUB, SERVER, 2, 101 + len(lost), ACK)),  # acknowledges bytes never captured
        (3_000_000, tcp(SERVER, SUB, 101 + len(lost), 2, PSH | ACK, after)),
        (4_000_000, tcp(SERVER, SUB, 101 + len(lost) + len(after), 2, FIN | ACK)),
        (4_100_000, tcp(SUB, SERVER, 2, 101 + len(lost) + len(after) + 1, ACK)),  # the FIN's number: no hole
    ]
    report = wire.read_capture(pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True), [SERVER])
    assert [(d.seq, d.capture_ns - T0) for d in report.deliveries] == [(1, 3_000_000)]
    assert report.stats.hole_bytes == len(lost)


def test_first_arrival_per_connection_other_runs_and_trailer_split() -> None:
    frame = sio_frame(envelope("p.0", 0, 0))
    other = sio_frame(envelope("p.0", 1, 0).replace(b"run1", b"run2"))
    cut = frame.index(b'"]')  # the envelope ends the packet; its trailer comes in the next
    records = (
        handshake(SUB, 1, 100, 0)
        + handshake(SUB2, 1, 500, 0)
        + [
            (1_000_000, tcp(SERVER, SUB, 101, 2, PSH | ACK, frame[:cut])),
            (1_500_000, tcp(SERVER, SUB, 101 + cut, 2, PSH | ACK, frame[cut:])),
            (2_000_000, tcp(SERVER, SUB, 101 + len(frame), 2, PSH | ACK, frame + other)),  # again, and another run
            (3_000_000, tcp(SERVER, SUB2, 501, 2, PSH | ACK, frame)),
        ]
    )
    data = pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True)
    report = wire.read_capture(data, [SERVER], run_id="run1")
    assert [(d.connection, d.seq, d.capture_ns - T0) for d in report.deliveries] == [
        (0, 0, 1_000_000),
        (1, 0, 3_000_000),
    ]
    assert (report.stats.duplicates, report.stats.other_runs, report.stats.trailer_split) == (1, 1, 1)
    assert len(wire.read_capture(data, [SERVER]).deliveries) == 3  # no run filter: run2's envelope counts


def test_sse_event_as_the_last_bytes_of_the_capture_is_unterminated_but_kept() -> None:
    event = b"id: 7\nevent: message\ndata: " + envelope("p.0", 7, 0)
    records = [*handshake(SUB, 1, 100, 0), (9_000_000, tcp(SERVER, SUB, 101, 2, PSH | ACK, event))]
    report = wire.read_capture(pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True), [SERVER])
    assert [(d.seq, d.capture_ns - T0) for d in report.deliveries] == [(7, 9_000_000)]
    assert report.stats.unterminated == 1


LINKS: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
    "sll-ipv4": (113, lambda p: bytes(14) + b"\x08\x00" + ipv4(p)),
    "sll2-ipv6": (276, lambda p: b"\x86\xdd" + bytes(18) + ipv6(p)),
    "null-ipv4": (0, lambda p: struct.pack("<I", 2) + ipv4(p)),
    "null-ipv6-bigendian-host": (0, lambda p: struct.pack(">I", 30) + ipv6(p)),
    "ethernet-vlan-ipv6": (1, lambda p: bytes(12) + b"\x81\x00\x00\x05\x86\xdd" + ipv6(p)),
    "raw-ipv4": (101, ipv4),
}


@pytest.mark.parametrize("name", list(LINKS))
@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_link_types_ip_versions_and_byte_orders(name: str, order: str) -> None:
    linktype, frame = LINKS[name]
    records = [*handshake(SUB, 1, 100, 0), (1_234_567, tcp(SERVER, SUB, 101, 2, PSH | ACK, FRAME_A))]
    data = pcap([(T0 + at, frame(s)) for at, s in records], nano=True, linktype=linktype, order=order)
    report = wire.read_capture(data, [SERVER])
    assert [(d.publisher, d.seq, d.due_ns, d.capture_ns) for d in report.deliveries] == [
        ("pubA.0", 0, T0 + 100_000_000, T0 + 1_234_567)
    ]
    assert (report.stats.linktype, report.stats.not_tcp) == (linktype, 0)


def test_not_tcp_and_truncated_records_are_counted() -> None:
    udp = ethernet(ipv4(struct.pack("!HHHH", SERVER, SUB, 8, 0), protocol=17))
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    data = pcap([(T0, udp), (T0 + 1, arp)], nano=True)
    report = wire.read_capture(data + b"\x00" * 10, [SERVER])
    assert (report.stats.packets, report.stats.not_tcp, report.stats.truncated_tail) == (2, 2, True)
    assert report.deliveries == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng is not supported"),
        (b"GIF89a" + bytes(30), "not a pcap file"),
        (b"\xd4\xc3\xb2\xa1", "too short"),
    ],
)
def test_files_that_are_not_classic_pcap_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(wire.CaptureError, match=reason):
        wire.read_capture(data, [SERVER])


def test_a_capture_that_starts_mid_connection_counts_older_bytes_as_retransmitted() -> None:
    """No handshake seen: the first segment marks offset 0; a resend of bytes from before it is old news."""
    start = 2**32 - 20  # so "before the first segment" is also across the wrap
    records = [
        (1_000_000, tcp(SERVER, SUB, start, 7, PSH | ACK, FRAME_A)),
        (2_000_000, tcp(SERVER, SUB, start - 30, 7, PSH | ACK, bytes(30) + FRAME_A)),  # older bytes, resent
        (3_000_000, tcp(SERVER, SUB, start + len(FRAME_A), 7, PSH | ACK, FRAME_B)),
    ]
    report = wire.read_capture(pcap([(T0 + at, ethernet(ipv4(s))) for at, s in records], nano=True), [SERVER])
    assert [(d.seq, d.capture_ns - T0) for d in report.deliveries] == [(0, 1_000_000), (1, 3_000_000)]
    assert report.stats.retransmitted_bytes == 30 + len(FRAME_A)
