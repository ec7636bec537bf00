"""Microbenchmark: CPU per Pusher delivery on the lean subscriber's hot path, without a network.

    python benchmarks/pusher_delivery.py [--payload-bytes 256] [--n 200000]

Measures, per delivery of one rtbench probe in a Pusher channel event (best of five runs):
``deliver`` the subscriber's ``deliver_to`` callback (recognise or decode the frame, dispatch to ``on_data``)
for a plain frame (the steady state) and for one that takes the general path (decode + codec: here the
same event with a ``user_id``), ``read+deliver`` the plain one from the bytes of its websocket frame (frame
parse included: what the socket's reader runs per read), and ``json.loads`` of the frame alone, for scale.
``on_data`` is a no-op: the recorder's cost (probe decode, accounting, histogram) is the same for every
provider.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.measure import probe  # noqa: E402
from harness.net.websocket import WebSocket  # noqa: E402
from harness.protocols import pusher as proto  # noqa: E402
from harness.providers.base import SubscriberHooks  # noqa: E402
from harness.providers.pusher import PusherProvider, PusherSubscriber  # noqa: E402

CHANNEL, EVENT = "rtbench-0", "rtbench"


def _options() -> argparse.Namespace:
    return argparse.Namespace(
        host="http://127.0.0.1:1", channel_type="public", event=EVENT, app_id="", key="", secret="", cluster=""
    )


def _best_us(stmt: Any, n: int) -> float:
    """CPU time (not wall time: the machine is shared) per call, best of five runs."""
    return min(timeit.repeat(stmt, number=n, repeat=5, timer=time.process_time)) / n * 1e6


async def measure(payload_bytes: int, n: int) -> dict[str, float]:
    provider = PusherProvider("http://127.0.0.1:1", _options())
    delivered = [0]

    def on_data(_data: object, _rx_ns: int) -> None:
        delivered[0] += 1

    subscriber = PusherSubscriber(provider, CHANNEL, SubscriberHooks(on_data=on_data), "u1")
    client = proto.ClientConnection(CHANNEL)
    client.receive(proto.decode(proto.connection_established("1.1")))
    client.receive(proto.decode(proto.subscription_succeeded(CHANNEL)))
    deliver = subscriber._deliverer(client)

    payload = probe.encode("run1", "abcd1234.0", 1, time.time_ns(), payload_bytes)
    text = proto.channel_event(CHANNEL, EVENT, payload)
    general = proto.channel_event(CHANNEL, EVENT, payload, user_id="u2")
    raw = text.encode()
    frame = bytes((0x81, 126)) + len(raw).to_bytes(2, "big") + raw if len(raw) >= 126 else bytes((0x81, len(raw))) + raw
    ws = WebSocket.__new__(WebSocket)
    WebSocket.__init__(ws, None, "", 1 << 22)  # type: ignore[arg-type]  # reads never touch the stream
    ws._upgraded = True
    ws.deliver_to(deliver, lambda _code, _reason: None)
    rx_ns = time.time_ns()

    results = {
        "frame_bytes": float(len(frame)),
        "json.loads_us": _best_us(lambda: json.loads(text), n),
        "deliver_plain_us": _best_us(lambda: deliver(text, rx_ns), n),
        "deliver_general_us": _best_us(lambda: deliver(general, rx_ns), n),
        "read+deliver_plain_us": _best_us(lambda: ws.data_received(frame, rx_ns), n),
    }
    assert delivered[0] == 3 * 5 * n, delivered
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payload-bytes", type=int, default=256)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    results = asyncio.run(measure(args.payload_bytes, args.n))
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
