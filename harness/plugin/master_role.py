"""The master role of a Locust process (the master, or the only process): it checks the options,
starts or checks the target, collects every generator's reports into the run folder, and at the end
writes summary.json, report.html, the console verdict and the exit code.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner

from harness.measure.gates import Gate
from harness.measure.records import IntervalReport, LoadRequest, Summary
from harness.measure.summary import format_text
from harness.plugin import fd_reserve, messages, options, target_process
from harness.plugin.generator_role import Reports
from harness.providers.base import Provider
from harness.report import files
from harness.report.collector import Collector

log = logging.getLogger("rtbench")
FLUSH_INTERVAL_S = 1.0
#: how long past the drain the master waits for workers' final reports
FINAL_GRACE_S = 30.0
#: options shown in the report besides the provider's own (secrets are redacted before writing)
SHOWN_OPTIONS = (
    "host",
    "num_users",
    "spawn_rate",
    "run_time",
    "processes",
    "expect_workers",
    "publish_rate",
    "mutation_rate",
    "mutations",
    "refetch",
    "api_delay_ms",
    "mutation_mix",
    "optimistic",
    "stale_ms",
    "refetch_jitter_ms",
    "api_base",
    "todos_path",
    "channels",
    "payload_bytes",
    "gate",
    "drain_timeout",
    "timestamp_field",
    "client",
    "warmup",
    "browser_probes",
)


class MasterRole:
    def __init__(
        self, environment: Environment, provider_cls: type[Provider], gates: list[Gate], provider_flags: set[str]
    ) -> None:
        self.environment = environment
        self.provider_cls = provider_cls
        self.provider_flags = provider_flags
        self.target: target_process.EmbeddedTarget | None = None
        self.host_given = environment.host
        self.resolve_host()
        self.collector = Collector(
            provider_cls.name, provider_cls.describe_target(self.host_given, self.options), gates
        )
        self.run_id = ""
        self.refused_reports = 0
        #: runs this process started (a web UI session can start many), and their folders by name
        self.runs_started = 0
        self.runs: dict[str, Path] = {}
        #: Ctrl-C ended the run early (the summary says so; the exit code is 1)
        self.interrupted = False
        self._cut = False
        self._flush_greenlet: gevent.Greenlet | None = None
        self._finished = True
        if isinstance(environment.runner, MasterRunner):
            runner = environment.runner
            runner.register_message(messages.INTERVAL, self._on_interval_message)
            runner.register_message(messages.FINAL, self._on_final_message)

    @property
    def options(self) -> argparse.Namespace:
        parsed = self.environment.parsed_options
        assert isinstance(parsed, argparse.Namespace), "rtbench needs Locust's command line options"
        return parsed

    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    def resolve_host(self) -> None:
        """The given host is checked; else the managed service's URL; else the embedded target is started."""
        environment, provider = self.environment, self.provider_cls
        if environment.host:
            target_process.check_reachable(environment.host, provider.schemes)
            return
        cloud = provider.cloud_host(self.options)
        if cloud is not None:  # a managed service: nothing to start, nothing local to check
            environment.host = cloud
            return
        if provider.target_module is None:
            raise target_process.TargetError(f"{provider.name} has no embedded target: give --host")
        self.target = target_process.EmbeddedTarget(provider.target_module, options.target_args(self.options))
        environment.host = self.target.url
        log.info("rtbench: embedded %s target at %s", provider.name, self.target.url)

    # -- a run begins -------------------------------------------------------------------------
    def begin(self, run_id: str) -> None:
        """A new run (the web UI can start many): a new folder; workers learn the run id before spawning."""
        if not self.environment.host and self.target is not None:  # the web UI's host field was cleared
            self.environment.host = self.target.url
        self.run_id = run_id
        self.refused_reports = 0
        self.runs_started += 1
        base = Path(self.options.report_dir) if self.options.report_dir else None
        folder = files.run_folder(base, self.collector.provider, self.runs_started)
        self.collector.begin(run_id, folder)
        self.runs[folder.name] = folder
        if isinstance(self.environment.runner, MasterRunner):
            self.environment.runner.send_message(messages.RUN, {"run_id": run_id})
        self._flush_greenlet = gevent.spawn(self._flush_loop)
        self._finished = False

    def _flush_loop(self) -> None:
        while self.collector.active:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.collector.flush()

    def add_interval(self, node: str, report: IntervalReport) -> None:
        if self.collector.active:
            self.collector.add_interval(node, report)

    def _on_interval_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        report = self._accepted(msg)
        if report is not None:
            self.add_interval(msg.node_id, report)

    def _on_final_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        report = self._accepted(msg)
        if report is not None and self.collector.active:
            self.collector.add_final(msg.node_id, report)

    def _accepted(self, msg: Any) -> Any | None:
        report = messages.report_of(self.run_id, msg.data)
        if report is None:
            self.refused_reports += 1
            log.warning("rtbench: refused a report from %s that is not of run %s", msg.node_id, self.run_id)
        return report

    # -- a run ends ---------------------------------------------------------------------------
    def finish(self, local_finish: Callable[[float], Reports | None] | None = None) -> Summary | None:
        """End the measurement once: collect every generator's final report, write the run; the summary.

        ``local_finish`` drains this process's own generator (no workers) and returns (last, final).
        """
        if self._finished or not self.collector.active:
            return None
        self._finished = True
        drain = float(self.options.drain_timeout)
        if self.is_master:
            self._collect_worker_finals(drain)
        elif local_finish is not None:
            reports = local_finish(drain)
            if reports is not None:
                self.collector.add_interval("local", reports[0])
                self.collector.add_final("local", reports[1])
        if self._flush_greenlet is not None:
            self._flush_greenlet.kill(block=False)
            self._flush_greenlet = None
        return self._write_run()

    def _collect_worker_finals(self, drain: float) -> None:
        """Ask every worker to finish and wait for their final reports, but not for a worker Locust has
        stopped hearing from (missing after ~3 s without a heartbeat): its part is built from the
        intervals it sent, and the summary says it is partial."""
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        runner.send_message(messages.FINISH, {"drain_timeout": drain})
        deadline = time.monotonic() + drain + FINAL_GRACE_S
        while time.monotonic() < deadline and not self._cut and self._awaited_workers(runner):
            gevent.sleep(0.05)
        lost = self.collector.finals_from_intervals()
        if lost:
            log.error(
                "rtbench: no final report from %s; their part comes from their interval reports "
                "(the summary is partial)",
                ", ".join(lost),
            )

    def _awaited_workers(self, runner: MasterRunner) -> list[str]:
        """Workers still alive whose final report has not come yet."""
        return [w.id for w in runner.clients.all if w.state != STATE_MISSING and w.id not in self.collector.finals]

    def _write_run(self) -> Summary:
        fd_reserve.RESERVE.release()  # room for the imports and files below, however many sockets are open
        from harness.report.html import redact, write_report  # pandas/matplotlib: imported only when needed

        parameters = redact(self.parameters(), self.provider_cls.secret_patterns)
        summary = self.collector.finalize(self.load_request(), parameters, interrupted=self.interrupted)
        assert self.collector.folder is not None
        folder = self.collector.folder.folder
        try:
            write_report(folder)
        except Exception:  # the verdict and the data files matter more than the page
            log.warning("rtbench: report.html could not be written", exc_info=True)
        print(format_text(summary, str(folder)), flush=True)
        self.collector.folder = None
        return summary

    def load_request(self) -> LoadRequest:
        """The load asked for (users: the web UI's count when it started the run)."""
        options = self.options
        return {
            "users": int(getattr(options, "num_users", 0) or 0),
            "publish_rate": float(options.publish_rate),
            "channels": int(options.channels),
            "payload_bytes": int(options.payload_bytes),
        }

    def parameters(self) -> dict[str, Any]:
        """The options that shaped this run, for the report (secrets are redacted by the caller)."""
        params = {
            k: v
            for k, v in sorted(vars(self.options).items())
            if (k in SHOWN_OPTIONS or k in self.provider_flags)
            and isinstance(v, str | int | float | bool | list | tuple | None)
        }
        params["host"] = self.environment.host
        return params

    def cut(self) -> None:
        """Stop waiting for workers' final reports: the run is written with the ones that arrived."""
        self._cut = True

    @property
    def passed(self) -> bool:
        """The exit code's verdict: gates passed, the run was not cut short and no generator was lost."""
        summary = self.collector.last_summary
        if summary is None:
            return not self.interrupted
        return not self.interrupted and not summary.get("partial") and bool(summary["passed"])

    def shutdown(self) -> None:
        if self.target is not None:
            self.target.stop()
