"""Micro-benchmark: CPU per delivery on the lean Ably subscriber's hot path, no network.

    python benchmarks/ably_hot_path.py [--payload-bytes 256] [--n 200000]

Feeds the frames the reference target sends (one MESSAGE, one probe of ``--payload-bytes``) to the same
code a live subscriber runs: the websocket frame parser, then the subscriber's ``deliver_to`` callback
(decode, channel and name checks, ``on_data``), with ``on_data`` doing nothing, so the figure is the
client's own cost per delivery, in both wire formats.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from harness.measure import probe  # noqa: E402
from harness.protocols import ably as proto  # noqa: E402
from harness.protocols import websocket as ws  # noqa: E402
from harness.providers.ably import LeanAblySubscriber  # noqa: E402
from harness.providers.base import SubscriberHooks  # noqa: E402


def server_frame(payload: bytes, binary: bool) -> bytes:
    """An unmasked server frame (what targets/ably writes)."""
    n = len(payload)
    first = 0x82 if binary else 0x81
    if n < 126:
        return bytes((first, n)) + payload
    return bytes((first, 126)) + n.to_bytes(2, "big") + payload


async def measure(fmt: str, payload_bytes: int, n: int) -> tuple[float, float]:
    text = probe.encode("run1", "pub1", 7, time.time_ns(), payload_bytes)
    message = proto.channel_message(
        "rtbench-0",
        [{"id": "c:0:0", "name": "todo:created", "data": text, "timestamp": 1, "connectionId": "c"}],
        message_id="c:0",
        timestamp=1,
        connection_id="c",
    )
    payload = proto.encode(message, fmt)
    frame = server_frame(payload, fmt == "msgpack")
    delivered = 0

    def on_data(_data: object, _rx_ns: int) -> None:
        nonlocal delivered
        delivered += 1

    sub = LeanAblySubscriber(
        SubscriberHooks(on_data=on_data), url="ws://unused/", fmt=fmt, channel="rtbench-0", event="todo:created"
    )
    sub.session = proto.ClientSession(fmt, "rtbench-0", "todo:created")
    on_frame = sub._on_frame
    parser = ws.FrameParser()
    rx_ns = time.time_ns()
    data: str | bytes = payload if fmt == "msgpack" else payload.decode("utf-8")

    def ably_layer() -> None:  # the deliver_to callback alone
        for _ in range(n):
            on_frame(data, rx_ns)

    def from_the_bytes() -> None:  # frame parsing included: a read of one frame, from the bytes up
        for _ in range(n):
            for event in parser.feed(frame):
                if type(event) is ws.Message:
                    on_frame(event.data, rx_ns)

    results = []
    for body in (ably_layer, from_the_bytes):
        best = min(_cpu_ns(body) for _ in range(ROUNDS))  # best of a few: the machine is shared
        results.append(best / n / 1000)
    assert delivered == 2 * ROUNDS * n
    return results[0], results[1]


ROUNDS = 5


def _cpu_ns(body: Callable[[], None]) -> int:
    start = time.process_time_ns()
    body()
    return time.process_time_ns() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payload-bytes", type=int, default=256)
    parser.add_argument("--n", type=int, default=50_000, help="deliveries per round (5 rounds, best kept)")
    args = parser.parse_args()
    for fmt in proto.FORMATS:
        ably_us, total_us = asyncio.run(measure(fmt, args.payload_bytes, args.n))
        print(
            f"{fmt:8} Ably decode + on_data {ably_us:5.2f} us/delivery; with websocket frame parse "
            f"{total_us:5.2f} us/delivery"
        )


if __name__ == "__main__":
    main()
