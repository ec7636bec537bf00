"""A round-robin TCP relay on loopback: the smallest load balancer, for runs that must land on every node.

``with round_robin(["127.0.0.1:3001", "127.0.0.1:3002"]) as url:`` listens on a free port and sends each
accepted connection to the next upstream in turn, bytes untouched both ways (websocket upgrades and
SSE streams pass through as they are, and so does each node's ``X-Rtbench-Node``). Strict alternation
makes the split known, where nginx's hash balancing on loopback could put every client on one node.
It runs on a thread of its own, so the test can block on a Locust subprocess meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence

__all__ = ["round_robin"]

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.contextmanager
def round_robin(upstreams: Sequence[str]) -> Iterator[str]:
    """An ``http://127.0.0.1:PORT`` relaying connection k to ``upstreams[k % len(upstreams)]`` (HOST:PORT)."""
    loop = asyncio.new_event_loop()
    order = itertools.cycle(upstreams)
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = next(order).rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        both = asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        with contextlib.suppress(asyncio.CancelledError):
            await both

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = loop.create_task(relay(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = loop.run_until_complete(asyncio.start_server(accepted, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, name="round-robin-relay", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:

        async def stop() -> None:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
