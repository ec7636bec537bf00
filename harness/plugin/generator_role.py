"""The generator role of a Locust process (the only process, or each worker): it owns the generator
session on the bridge loop, ships an interval report every second, feeds Locust's live stats, and
drains and reports once when the run ends.

Users reach it through ``self.environment`` (:func:`of`), never through a module global.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import gevent
from locust.env import Environment

from harness.loop.bridge import get_bridge
from harness.loop.session import GeneratorSession
from harness.measure.records import FinalReport, IntervalReport
from harness.net.chromium import find_chromium
from harness.plugin import options as run_options
from harness.plugin.live_stats import log_batch
from harness.providers.base import Provider

log = logging.getLogger("rtbench")
INTERVAL_S = 1.0
#: the attribute of Locust's Environment that holds this process's generator role
ENVIRONMENT_ATTRIBUTE = "rtbench_generator"

#: where interval reports go: to the collector in this process, or to the master as a message
IntervalSink = Callable[[IntervalReport], None]
#: what a generator hands over when it finishes: its last interval report and its final report
Reports = tuple[IntervalReport, FinalReport]


def of(environment: Environment) -> GeneratorRole:
    """The generator role of this process (set when the run's first test starts)."""
    role = getattr(environment, ENVIRONMENT_ATTRIBUTE, None)
    if not isinstance(role, GeneratorRole):
        raise RuntimeError("rtbench: no generator in this process (the scenario must call harness.plugin.setup)")
    return role


class GeneratorRole:
    def __init__(self, environment: Environment, provider_cls: type[Provider]) -> None:
        self.environment = environment
        self.provider_cls = provider_cls
        self.session: GeneratorSession | None = None
        self._interval_greenlet: gevent.Greenlet | None = None
        self._finished = True
        setattr(environment, ENVIRONMENT_ATTRIBUTE, self)

    @property
    def options(self) -> argparse.Namespace:
        parsed = self.environment.parsed_options
        assert isinstance(parsed, argparse.Namespace), "rtbench needs Locust's command line options"
        return parsed

    def begin(self, run_id: str, ship_interval: IntervalSink) -> None:
        """A run starts: fresh measurements under ``run_id``, an interval report every second."""
        if self.session is None:
            assert self.environment.host
            self.session = GeneratorSession(self.provider_cls, self.environment.host, self.options)
        self.session.options = self.options
        get_bridge().call(self.session.begin, run_id)
        # the run is on before the pages open: a run that ends while they still open keeps its result
        self._finished = False
        self._interval_greenlet = gevent.spawn(self._interval_loop, ship_interval)
        self._start_browser_probes()

    def _start_browser_probes(self) -> None:
        """``--browser-probes N``: the pages run on one generator only (the only process, or worker 0), so
        N means N pages whatever the number of workers; they subscribe before the users spawn."""
        count = run_options.browser_probes(self.options)
        runner = self.environment.runner
        if not count or runner is None or getattr(runner, "worker_index", 0) != 0:
            return
        binary = find_chromium()
        assert self.session is not None
        if binary is None:  # the master checked its own machine; this worker runs elsewhere
            log.error("rtbench: --browser-probes: no Chromium on this generator; no pages run")
            return
        secrets = tuple(str(getattr(self.options, name, "") or "") for name in ("secret", "ably_key"))
        clients = str(run_options.browser_clients_dir(self.options))
        log.info("rtbench: opening %d browser page(s) before the users spawn", count)
        started = time.monotonic()
        try:
            get_bridge().run(self.session.start_browser_probes(count, binary, clients, secrets))
        except Exception as exc:
            log.error("rtbench: --browser-probes: %s", exc)
            return
        log.info("rtbench: browser pages ready in %.1f s", time.monotonic() - started)

    def _interval_loop(self, ship_interval: IntervalSink) -> None:
        """Every second: the interval report and the live UI's samples. A failing second (the process out
        of file descriptors, say) is logged once and skipped; the loop, and the run's result, go on."""
        bridge = get_bridge()
        failed = False
        while True:
            gevent.sleep(INTERVAL_S)
            assert self.session is not None
            try:
                ship_interval(bridge.call(self.session.recorder.interval_report))
                self.feed_live_stats()
            except Exception as exc:
                if not failed:
                    log.warning("rtbench: interval report failed (%s: %s); going on", type(exc).__name__, exc)
                failed = True

    def feed_live_stats(self) -> None:
        """Deliveries and publishes as Locust requests, so the web UI shows rates and rough latency."""
        assert self.session is not None and self.environment.runner is not None
        stats, size = self.environment.runner.stats, int(self.options.payload_bytes)
        log_batch(stats, "PUSH", "deliver", self.session.recorder.take_ui_samples(), size)
        log_batch(stats, "PUSH", "publish", self.session.take_ui_publish(), size)
        app = self.session.app
        if app is not None:  # the todo app: its refetch stampede and time to fresh data
            refetch_ms, fresh_ms = app.take_ui()
            log_batch(stats, "GET", "/api/todos (refetch)", refetch_ms, 0)
            log_batch(stats, "APP", "fresh data", fresh_ms, 0)

    def spawning_complete(self) -> None:
        """The steady state begins ``--warmup`` after every user's connection is open."""
        if self.session is not None:
            get_bridge().call(self.session.spawning_complete, float(self.options.warmup))

    def finish(self, drain_timeout: float) -> Reports | None:
        """Stop publishing, drain, and return (last interval report, final report); None if already done."""
        if self.session is None or self._finished:
            return None
        self._finished = True
        self._stop_interval_loop()
        last, final = get_bridge().run(self.session.finish(drain_timeout))
        self.feed_live_stats()
        return last, final

    def _stop_interval_loop(self) -> None:
        if self._interval_greenlet is not None:
            self._interval_greenlet.kill(block=False)
            self._interval_greenlet = None

    def shutdown(self) -> None:
        """The process is quitting: close every connection and the provider's shared resources."""
        self._stop_interval_loop()
        if self.session is not None:
            try:
                get_bridge().run(self.session.aclose(), timeout=5)
            except Exception:
                log.debug("rtbench: closing the provider failed", exc_info=True)
