"""Cost of one SSE delivery in the lean EventSource (harness/providers/sse.py), two ways.

1. In process, no sockets: ``EventStream.data_received`` fed one HTTP chunk holding one probe event, as the
   transport does in its steady state (one event per read): http1 decode + SSE parse + the hook, in us per event.
   Beside it, the bare codecs (http1 + sse.Parser) so the driver's own share shows.
2. Over loopback against the reference target (started here): ``--subscribers`` streams, ``--messages``
   probes published one at a time; the generator process's CPU time (``time.process_time``) while the
   deliveries land, per delivery. The target runs in its own process, so its work is not counted.

Run: ``PYTHONPATH=. python benchmarks/sse_delivery.py`` (wrap in ``flock /tmp/rtbench-heavy.lock`` on a
shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop

from harness.protocols import http1, sse
from harness.providers.base import SubscriberHooks
from harness.providers.sse import EventSource, EventStream, SSEProvider

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def probe_chunk(seq: int) -> bytes:
    """A typical probe event (~300 bytes on the wire) as one HTTP chunk."""
    payload = f"rtb1|{seq}|1700000000123456789|".encode() + b"x" * 240
    event = b"id: %d\ndata: %s\n\n" % (seq, payload)
    return b"%x\r\n%s\r\n" % (len(event), event)


class _FakeStream:
    """What EventStream touches of a Stream, with no socket."""

    rx_clock = "kernel"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def close(self) -> None:
        pass


def options() -> argparse.Namespace:
    opts = argparse.Namespace(
        channels=1,
        event="message",
        sse_path="/api/events",
        sse_publish_path="/api/publish",
        sse_max_line=2 * 1024 * 1024,
        sse_reconnect_ms=1000,
        timestamp_field="",
    )
    SSEProvider.validate(opts)
    return opts


def in_process(events: int, repeat: int) -> None:
    chunks = [probe_chunk(i) for i in range(events)]

    async def driver() -> float:
        got = 0

        def on_data(_data: object, _rx_ns: int) -> None:
            nonlocal got
            got += 1

        source = EventSource(
            SSEProvider("http://127.0.0.1:1", options()),
            "http://127.0.0.1:1/api/events",
            SubscriberHooks(on_data=on_data),
        )
        response = EventStream(source, _FakeStream(asyncio.get_running_loop()), "bench")  # type: ignore[arg-type]
        response.data_received(HEAD, 0)
        t0 = time.perf_counter()
        for chunk in chunks:
            response.data_received(chunk, 1)
        took = time.perf_counter() - t0
        assert got == events, got
        return took / events * 1e6

    def codecs() -> float:
        parser, events_parser = http1.ResponseParser(), sse.Parser()
        parser.feed(HEAD)
        t0 = time.perf_counter()
        for chunk in chunks:
            for body in parser.feed(chunk):
                events_parser.feed(body.data)  # type: ignore[union-attr]
        return (time.perf_counter() - t0) / events * 1e6

    best_driver = min(asyncio.run(driver()) for _ in range(repeat))
    best_codecs = min(codecs() for _ in range(repeat))
    print(f"in process, {events} events of {len(chunks[0])} bytes, best of {repeat}:")
    print(f"  data_received -> http1 -> sse -> on_data  {best_driver:5.2f} us/event")
    print(f"  codecs alone (http1 + sse.Parser)         {best_codecs:5.2f} us/event")


def loopback(subscribers: int, messages: int, provider_cls: type[SSEProvider] = SSEProvider) -> None:
    from harness.measure import probe
    from tests.helpers import running_target

    async def main(url: str) -> tuple[float, float]:
        provider = provider_cls(url, options())
        delivered = 0
        target = subscribers
        done = asyncio.Event()

        def on_data(_data: object, _rx_ns: int) -> None:
            nonlocal delivered
            delivered += 1
            if delivered == target:
                done.set()

        subs = [await provider.open_subscriber("c", SubscriberHooks(on_data=on_data)) for _ in range(subscribers)]
        publisher = await provider.open_publisher()
        cpu = wall = 0.0
        try:
            for k in range(messages):
                target = (k + 1) * subscribers
                done.clear()
                text = probe.encode("bench", "p", k, time.time_ns(), 256)
                c0, w0 = time.process_time(), time.perf_counter()
                await publisher.publish("c", text)
                await done.wait()
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
        finally:
            for sub in subs:
                await sub.close()
            await provider.aclose()
            from harness.providers.http import close_shared_session

            await close_shared_session()
        return cpu, wall

    with running_target("targets.sse", "--port", "0") as url:
        cpu, wall = uvloop.run(main(url))
    per = cpu / (subscribers * messages) * 1e6
    print(
        f"loopback ({provider_cls.__module__}), {subscribers} subscribers x {messages} messages: "
        f"generator CPU {cpu:.3f} s "
        f"({per:.1f} us per delivery incl. the publish POST; {per * 1000 / 1e6:.3f} CPU-s per "
        f"1,000 deliveries), wall {wall:.2f} s"
    )


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--events", type=int, default=50_000)
    args.add_argument("--repeat", type=int, default=5)
    args.add_argument("--subscribers", type=int, default=500)
    args.add_argument("--messages", type=int, default=40)
    args.add_argument("--no-loopback", action="store_true")
    opts: Any = args.parse_args()
    in_process(opts.events, opts.repeat)
    if not opts.no_loopback:
        loopback(opts.subscribers, opts.messages)


if __name__ == "__main__":
    main()
