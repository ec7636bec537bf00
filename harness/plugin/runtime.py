"""Wires rtbench into Locust's event hooks, once per process (DESIGN: extend through event hooks).

Roles: the master (or the only process) validates options, starts the embedded target, collects
reports and writes the verdict; every generator (the only process, or each worker) owns a bridge
loop with the provider and recorder, and reports every second and once more at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness import providers
from harness.loop.bridge import get_bridge
from harness.loop.session import GeneratorSession
from harness.measure import hist
from harness.measure.gates import Gate
from harness.measure.summary import format_text
from harness.plugin import options as options_mod
from harness.plugin import target_process as embedded
from harness.plugin.live_stats import log_batch
from harness.providers.base import Provider, ProviderConfigError
from harness.report import files
from harness.report.collector import MSG_FINAL, MSG_FINISH, MSG_INTERVAL, Collector

log = logging.getLogger("rtbench")
INTERVAL_S = 1.0
FINAL_GRACE_S = 30.0
EXIT_BAD_USAGE = 2


def fail_usage(message: str) -> None:
    """One line, exit code 2, no traceback (the contract for bad input).

    With ``--processes`` the workers were forked before options could be checked; they would wait a
    minute for a master that is gone, so they are ended here.
    """
    sys.stderr.write(f"rtbench: error: {message}\n")
    sys.stderr.flush()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            child.kill()
    raise SystemExit(EXIT_BAD_USAGE)


class Runtime:
    def __init__(self, provider_name: str) -> None:
        self.provider_name = provider_name
        self.provider_cls: type[Provider] = providers.load(provider_name)
        self.env: Environment | None = None
        self.gates: list[Gate] = []
        self.collector: Collector | None = None
        self.generator: GeneratorSession | None = None
        self.target: embedded.EmbeddedTarget | None = None
        self.run_id = ""
        self._greenlets: list[gevent.Greenlet] = []
        self._finished = True
        self._provider_actions: list[Any] = []
        for hook, listener in (
            (events.init_command_line_parser, self._add_arguments),
            (events.init, self._on_init),
            (events.test_start, self._on_test_start),
            (events.test_stopping, self._on_test_stopping),
            (events.quitting, self._on_quitting),
            (events.spawning_complete, self._on_spawning_complete),
        ):
            hook.add_listener(listener)  # type: ignore[no-untyped-call]

    # -- setup --------------------------------------------------------------------------------
    def _add_arguments(self, parser: Any) -> None:
        group = options_mod.add_arguments(parser)
        before = set(map(id, parser._actions))
        self.provider_cls.add_arguments(group)
        self._provider_actions = [a for a in parser._actions if id(a) not in before]

    @property
    def options(self) -> argparse.Namespace:
        assert self.env is not None and self.env.parsed_options is not None
        parsed: argparse.Namespace = self.env.parsed_options
        return parsed

    @property
    def is_master(self) -> bool:
        return isinstance(self.env.runner if self.env else None, MasterRunner)

    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner if self.env else None, WorkerRunner)

    def _on_init(self, environment: Environment, runner: Any = None, **_kw: Any) -> None:
        self.env = environment
        hist.warm_up()  # build lookup tables now, not on the first report while deliveries are timed
        if environment.parsed_options is None:  # used as a library without a command line
            return
        if self.options.timestamp_field:  # the server sends its own stamped events: no publisher user
            from harness.plugin.users import PublisherUser

            environment.user_classes[:] = [c for c in environment.user_classes if not issubclass(c, PublisherUser)]
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.register_message(MSG_FINISH, self._on_finish_message)
            return
        try:
            self.gates = options_mod.validate(self.options)
            self.provider_cls.validate(self.options)
            self.provider_cls.check_client(self.options)
            self._resolve_host(environment)
        except (options_mod.OptionError, ProviderConfigError, embedded.TargetError) as exc:
            fail_usage(str(exc))
        target = self.provider_cls.describe_target(self._host_given, self.options)
        self.collector = Collector(self.provider_name, target, self.gates)
        if isinstance(runner, MasterRunner):
            runner.register_message(MSG_INTERVAL, self._on_interval_message)
            runner.register_message(MSG_FINAL, self._on_final_message)

    def _resolve_host(self, environment: Environment) -> None:
        self._host_given = environment.host
        if environment.host:
            embedded.check_reachable(environment.host, self.provider_cls.schemes)
            return
        cloud = self.provider_cls.cloud_host(self.options)
        if cloud is not None:  # a managed service: nothing to start, nothing local to check
            environment.host = cloud
            return
        if self.provider_cls.target_module is None:
            raise embedded.TargetError(f"{self.provider_name} has no embedded target: give --host")
        self.target = embedded.EmbeddedTarget(self.provider_cls.target_module)
        environment.host = self.target.url
        log.info("rtbench: embedded %s target at %s", self.provider_name, self.target.url)

    # -- a run begins -------------------------------------------------------------------------
    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        if self.collector is not None:  # master or local: a new run id travels to workers with spawn
            if not environment.host and self.target is not None:  # the web UI's host field was cleared
                environment.host = self.target.url
            self.run_id = uuid.uuid4().hex[:12]
            self.options.rtbench_run_id = self.run_id
            folder = (
                Path(self.options.report_dir) if self.options.report_dir else files.default_folder(self.provider_name)
            )
            self.collector.begin(self.run_id, folder)
            self._greenlets.append(gevent.spawn(self._flush_loop))
        else:
            self.run_id = str(getattr(self.options, "rtbench_run_id", "")) or uuid.uuid4().hex[:12]
        if not self.is_master:
            self._begin_generator(environment)
        self._finished = False

    def _begin_generator(self, environment: Environment) -> None:
        bridge = get_bridge()
        if self.generator is None:
            assert environment.host
            self.generator = GeneratorSession(self.provider_cls, environment.host, self.options)
        self.generator.options = self.options
        bridge.call(self.generator.begin, self.run_id)
        self._greenlets.append(gevent.spawn(self._interval_loop))

    def _interval_loop(self) -> None:
        """Generator side: every second, ship an interval report and feed Locust's live stats."""
        bridge = get_bridge()
        while True:
            gevent.sleep(INTERVAL_S)
            assert self.generator is not None
            report = bridge.call(self.generator.recorder.interval_report)
            self._ship_interval(report)
            self._feed_locust_stats()

    def _ship_interval(self, report: dict[str, Any]) -> None:
        assert self.env is not None
        if self.collector is not None:
            self.collector.add_interval("local", report)
        else:
            self.env.runner.send_message(MSG_INTERVAL, report)  # type: ignore[union-attr]

    def _feed_locust_stats(self) -> None:
        """Deliveries and publishes as Locust requests, so the web UI shows rates and rough latency."""
        assert self.env is not None and self.generator is not None
        assert self.env.runner is not None
        stats, size = self.env.runner.stats, int(self.options.payload_bytes)
        log_batch(stats, "PUSH", "deliver", self.generator.recorder.take_ui_samples(), size)
        log_batch(stats, "PUSH", "publish", self.generator.take_ui_publish(), size)

    def _flush_loop(self) -> None:
        while self.collector is not None and self.collector.active:
            gevent.sleep(INTERVAL_S)
            self.collector.flush()

    def _on_spawning_complete(self, **_kw: Any) -> None:
        """Every user is started: the steady state begins ``--warmup`` after their connections are open
        (earlier deliveries are ramp-up, reported apart), and long-lived objects move out of the garbage
        collector's sight, so full collections (tens of ms with thousands of clients) stop pausing
        deliveries. On a worker this fires when the master says every worker is done."""
        if self.generator is not None:
            get_bridge().call(self.generator.spawning_complete, float(self.options.warmup))
            gc.freeze()

    # -- a run ends ---------------------------------------------------------------------------
    def _on_interval_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        if self.collector is not None:
            self.collector.add_interval(msg.node_id, msg.data)

    def _on_final_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        if self.collector is not None:
            self.collector.add_final(msg.node_id, msg.data)

    def _on_finish_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Worker: the master is ending the measurement; drain and report once."""
        gevent.spawn(self._finish_worker, float(msg.data.get("drain_timeout", 5)))

    def _finish_generator(self, drain_timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets = []
        assert self.generator is not None
        last, final = get_bridge().run(self.generator.finish(drain_timeout))
        self._feed_locust_stats()
        return last, final

    def _finish_worker(self, drain_timeout: float) -> None:
        if self.generator is None or self._finished:
            return
        self._finished = True
        last, final = self._finish_generator(drain_timeout)
        assert self.env is not None and self.env.runner is not None
        self.env.runner.send_message(MSG_INTERVAL, last)
        self.env.runner.send_message(MSG_FINAL, final)

    def _on_test_stopping(self, environment: Environment, **_kw: Any) -> None:
        self.finish()

    def finish(self) -> None:
        """Master or local: end the measurement once, collect every generator's report, write the run."""
        if self._finished or self.collector is None or not self.collector.active:
            return
        self._finished = True
        drain = float(self.options.drain_timeout)
        runner = self.env.runner if self.env else None
        if isinstance(runner, MasterRunner):
            expected = len(runner.clients)
            runner.send_message(MSG_FINISH, {"drain_timeout": drain})
            deadline = time.monotonic() + drain + FINAL_GRACE_S
            while len(self.collector.finals) < expected and time.monotonic() < deadline:
                gevent.sleep(0.05)
            if len(self.collector.finals) < expected:
                log.error(
                    "rtbench: only %d of %d workers reported; the summary covers those",
                    len(self.collector.finals),
                    expected,
                )
        else:
            last, final = self._finish_generator(drain)
            self.collector.add_interval("local", last)
            self.collector.add_final("local", final)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets = []
        load = {
            "users": int(getattr(self.options, "num_users", 0) or 0),
            "publish_rate": float(self.options.publish_rate),
            "channels": int(self.options.channels),
            "payload_bytes": int(self.options.payload_bytes),
        }
        from harness.report.html import redact, write_report  # pandas/matplotlib: imported only when needed

        summary = self.collector.finalize(load, redact(self._parameters()))
        assert self.collector.folder is not None
        folder = self.collector.folder.folder
        try:
            write_report(folder)
        except Exception:  # the verdict and the data files matter more than the page
            log.warning("rtbench: report.html could not be written", exc_info=True)
        print(format_text(summary, str(folder)), flush=True)
        self.collector.folder = None

    def _parameters(self) -> dict[str, Any]:
        """The options that shaped this run, for the report (secrets are redacted by the caller)."""
        shown = (
            "host",
            "num_users",
            "spawn_rate",
            "run_time",
            "processes",
            "expect_workers",
            "publish_rate",
            "channels",
            "payload_bytes",
            "gate",
            "drain_timeout",
            "timestamp_field",
            "client",
            "warmup",
        )
        provider_flags = {a.dest for a in self._provider_actions}
        params = {
            k: v
            for k, v in sorted(vars(self.options).items())
            if (k in shown or k in provider_flags) and isinstance(v, str | int | float | bool | list | None)
        }
        params["host"] = self.env.host if self.env else params.get("host")
        return params

    def _on_quitting(self, environment: Environment, **_kw: Any) -> None:
        if self.is_worker:
            self._shutdown_generator()
            return
        self.finish()
        self._shutdown_generator()
        summary = self.collector.last_summary if self.collector is not None else None
        if summary is not None and not summary["passed"]:
            environment.process_exit_code = 1
        if self.target is not None:
            self.target.stop()

    def _shutdown_generator(self) -> None:
        if self.generator is not None:
            try:
                get_bridge().run(self.generator.aclose(), timeout=5)
            except Exception:
                log.debug("rtbench: closing the provider failed", exc_info=True)


_RUNTIME: Runtime | None = None


def setup(provider_name: str) -> Runtime:
    """Install rtbench for one provider in this Locust process (idempotent)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = Runtime(provider_name)
    return _RUNTIME


def current() -> Runtime:
    assert _RUNTIME is not None, "harness.plugin.runtime.setup(provider) was not called by the scenario"
    return _RUNTIME
