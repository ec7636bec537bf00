"""One provider's checklist against one server: each item with fresh clients, closed after it."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

from harness.checklist.clients import Clients
from harness.checklist.facts import facts_for
from harness.checklist.items import ITEMS, Context, Settings
from harness.checklist.outcome import ITEMS as ORDER
from harness.checklist.outcome import Checklist, ItemResult, failed
from harness.checklist.restart import Restarter
from harness.net.stream import timestamps_ready
from harness.providers.base import Provider
from harness.providers.http import close_shared_session

OnResult = Callable[[str, ItemResult], None]


async def run_checklist(
    provider_cls: type[Provider],
    host: str,
    options: argparse.Namespace,
    restarter: Restarter,
    settings: Settings,
    checklist: Checklist,
    on_result: OnResult,
) -> Checklist:
    """Run the items in order into ``checklist`` (partial results stay there if interrupted)."""
    timestamps_ready()  # latency at the socket from the first event on, as in a run
    provider = provider_cls(host, options)
    run_id = "check" + uuid.uuid4().hex[:8]
    try:
        for name in ORDER:
            clients = Clients(provider, run_id)
            started = time.monotonic()
            try:
                result = await ITEMS[name](Context(clients, facts_for(provider_cls.name), restarter, settings))
            except Exception as exc:  # a bug or an unforeseen library error: still one line, and go on
                result = failed(name, f"the check itself broke: {type(exc).__name__}: {exc}")
            finally:
                await clients.aclose()
            result = result.took(time.monotonic() - started)
            checklist.results.append(result)
            on_result(checklist.provider, result)
    finally:
        await provider.aclose()
        await close_shared_session()
    return checklist
