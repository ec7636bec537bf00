"""Per-event cost of the SSE receive path: HTTP/1.1 chunked decode + SSE parse, one event per read.

Compares the hand-written :mod:`harness.protocols.http1` with httptools (C, llhttp) driving the same
SSE parser, so the choice in http1.py's docstring rests on a number. Run:
``PYTHONPATH=. python benchmarks/http1_codec.py`` (optional ``--events N``). httptools is not a
project dependency; the comparison is skipped without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

from harness.protocols import sse
from harness.protocols.http1 import Body, ResponseParser

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def sse_chunk(seq: int) -> bytes:
    """A typical probe event (~300 bytes on the wire) as one HTTP chunk."""
    payload = f"rtb1|{seq}|1700000000123456789|".encode() + b"x" * 240
    event = b"id: %d\nevent: message\ndata: %s\n\n" % (seq, payload)
    return b"%x\r\n%s\r\n" % (len(event), event)


def run_handwritten(chunks: list[bytes], with_sse: bool) -> int:
    http = ResponseParser()
    http.feed(HEAD)
    parser = sse.Parser()
    got = 0
    for chunk in chunks:
        for ev in http.feed(chunk):
            if type(ev) is Body:
                if with_sse:
                    got += len(parser.feed(ev.data))
                else:
                    got += 1
    return got


def run_httptools(chunks: list[bytes], with_sse: bool) -> int:
    import httptools

    parser = sse.Parser()
    events: list[sse.Event | sse.Problem] = []
    bodies: list[bytes] = []

    class Proto:
        def on_body(self, body: bytes) -> None:
            if with_sse:
                events.extend(parser.feed(body))
            else:
                bodies.append(body)

    http = httptools.HttpResponseParser(Proto())
    http.feed_data(HEAD)
    for chunk in chunks:
        http.feed_data(chunk)
    return len(events) if with_sse else len(bodies)


def timed(fn: Callable[[list[bytes], bool], int], chunks: list[bytes], with_sse: bool, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = fn(chunks, with_sse)
        best = min(best, time.perf_counter() - t0)
        assert got == len(chunks), (fn.__name__, got)
    return best / len(chunks) * 1e6


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--events", type=int, default=50_000)
    args.add_argument("--repeat", type=int, default=5)
    opts = args.parse_args()
    chunks = [sse_chunk(i) for i in range(opts.events)]
    print(f"{opts.events} events of {len(chunks[0])} bytes, one chunk per feed; best of {opts.repeat}, us/event")
    for name, fn in (("hand-written", run_handwritten), ("httptools", run_httptools)):
        if name == "httptools" and importlib.util.find_spec("httptools") is None:
            print("  httptools     not installed (pip install httptools), skipped")
            continue
        http_only = timed(fn, chunks, False, opts.repeat)
        both = timed(fn, chunks, True, opts.repeat)
        print(f"  {name:13} http only {http_only:5.2f}   http + sse.Parser {both:5.2f}")
    sse_only = sse.Parser()
    bodies = [c[c.index(b"\r\n") + 2 : -2] for c in chunks]
    t0 = time.perf_counter()
    for b in bodies:
        sse_only.feed(b)
    print(f"  sse.Parser alone {(time.perf_counter() - t0) / len(bodies) * 1e6:5.2f}")


if __name__ == "__main__":
    main()
