"""rtbench as a Locust plugin: the event hooks, and which roles this process plays.

The only process of a local run plays both roles; with ``--processes`` or ``--master``/``--worker``
the master plays the master role and every worker the generator role. Scenarios call :func:`setup`
once at import time (DESIGN: extend Locust through event hooks).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
import sys
import time
import uuid
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness import providers
from harness.measure import hist
from harness.plugin import fd_reserve, generator_role, messages, options, target_process, web_tab
from harness.plugin.generator_role import GeneratorRole
from harness.plugin.master_role import MasterRole
from harness.plugin.users import PublisherUser
from harness.providers.base import Provider, ProviderConfigError

EXIT_BAD_USAGE = 2
#: how long a master waits for connected workers to say they are ready before a run starts
WORKER_READY_TIMEOUT_S = 10.0
log = logging.getLogger("rtbench")


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


def needs_own_master_port(argv: list[str]) -> bool:
    """``--processes`` without a master port: Locust would bind 5557, and a second such run on the machine
    would fail (or its workers join the first run's master). Separate ``--master``/``--worker`` commands
    keep Locust's default, which both sides must agree on."""
    given = {arg.split("=", 1)[0] for arg in argv}
    return "--processes" in given and not given & {"--master-bind-port", "--master-port"}


def free_port() -> int:
    """A TCP port free on this machine now (the master binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


class RtbenchPlugin:
    """Listens to Locust's events and hands each to the role(s) of this process."""

    def __init__(self, provider_name: str, app: bool = False) -> None:
        self.provider_cls: type[Provider] = providers.load(provider_name)
        #: the todo-app workload (scenarios/todo_app.py): writers, readers, ``--refetch``
        self.app = app
        self.master: MasterRole | None = None
        self.generator: GeneratorRole | None = None
        self.run_id = ""
        self._provider_flags: set[str] = set()
        self._interrupts = 0
        #: workers (Locust node ids) whose rtbench hooks are set up
        self._ready_workers: set[str] = set()
        self._options: Any = None
        for hook, listener in (
            (events.init_command_line_parser, self._add_arguments),
            (events.init, self._on_init),
            (events.test_start, self._on_test_start),
            (events.spawning_complete, self._on_spawning_complete),
            (events.test_stopping, self._on_test_stopping),
            (events.quitting, self._on_quitting),
        ):
            hook.add_listener(listener)  # type: ignore[no-untyped-call]

    def _add_arguments(self, parser: Any) -> None:
        if needs_own_master_port(sys.argv[1:]):
            port = free_port()
            parser.set_defaults(master_bind_port=port, master_port=port)
        group = options.add_arguments(parser)
        if self.app:
            options.add_app_arguments(parser, self.provider_cls.name)
        before = set(map(id, parser._actions))
        self.provider_cls.add_arguments(group)
        self._provider_flags = {a.dest for a in parser._actions if id(a) not in before}

    def _on_init(self, environment: Environment, **_kw: Any) -> None:
        self._options = environment.parsed_options
        hist.warm_up()  # build lookup tables now, not on the first report while deliveries are timed
        if environment.parsed_options is None:  # used as a library without a command line
            return
        runner = environment.runner
        if isinstance(runner, MasterRunner):  # first: an embedded target's start lets workers talk
            runner.register_message(messages.READY, self._on_worker_ready)
        if not self.provider_cls.publishes(environment.parsed_options):  # e.g. the server stamps its own events
            environment.user_classes[:] = [c for c in environment.user_classes if not issubclass(c, PublisherUser)]
        if not isinstance(runner, MasterRunner):
            self.generator = GeneratorRole(environment, self.provider_cls)
        signal.signal(signal.SIGINT, self._on_interrupt)
        if isinstance(runner, WorkerRunner):
            runner.register_message(messages.RUN, self._on_run_message)
            runner.register_message(messages.FINISH, self._on_finish_message)
            runner.send_message(messages.READY, None)
            return
        try:
            gates = options.validate(environment.parsed_options)
            if self.app:
                options.validate_app(environment.parsed_options, self.provider_cls.app_events)
                cloud = self.provider_cls.is_cloud(environment.parsed_options)
                if cloud and not environment.parsed_options.api_base:
                    raise options.OptionError("the todo app needs a server with /api/todos: give --host or --api-base")
            self.provider_cls.validate(environment.parsed_options)
            self.provider_cls.check_client(environment.parsed_options)
            if options.browser_probes(environment.parsed_options):
                self.provider_cls.check_browser(environment.parsed_options)
            options.validate_browser(environment.parsed_options, self.provider_cls.browser_bundle)
            self.master = MasterRole(environment, self.provider_cls, gates, self._provider_flags)
            if environment.web_ui is not None:
                web_tab.install(environment, self.master)
        except (options.OptionError, ProviderConfigError, target_process.TargetError) as exc:
            fail_usage(str(exc))

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        """Ctrl-C reaches every process of the terminal's group. The first one ends the run as Locust
        does (stop, drain, write the run, marked interrupted); the second cuts the drain short and still
        writes what was measured. Workers forked by ``--processes`` leave the first to their master,
        which drains them; a second one (or the master's own at exit) stops them."""
        self._interrupts += 1
        if self.master is None:  # a worker
            if self._interrupts == 1 and getattr(self._options, "processes", None):
                return
            raise KeyboardInterrupt
        if self._interrupts == 1:
            log.warning("rtbench: interrupted: stopping, draining and writing the run (Ctrl-C again to stop at once)")
            self.master.interrupted = True
            raise KeyboardInterrupt  # Locust's own Ctrl-C path: quit, test_stopping, quitting
        log.warning("rtbench: interrupted again: writing what was measured so far")
        self.master.cut()
        if self.generator is not None and self.generator.session is not None:
            self.generator.session.drain_cut = True

    # -- a run begins -------------------------------------------------------------------------
    def _on_run_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Worker: the master names the run before it sends the spawn message."""
        self.run_id = str(msg.data.get("run_id", ""))

    def _on_worker_ready(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self._ready_workers.add(str(msg.node_id))

    def _await_workers(self, runner: MasterRunner) -> None:
        """Locust connects a worker before its rtbench hooks are set up, and a master that starts at once
        (workers started first) would send the run's id to a worker that drops it: wait, boundedly, until
        every connected worker has said it is ready."""
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while waiting := [c.id for c in runner.clients.all if str(c.id) not in self._ready_workers]:
            if time.monotonic() > deadline:
                log.warning("rtbench: %d worker(s) never said they were ready; starting without", len(waiting))
                return
            gevent.sleep(0.02)

    def _on_test_start(self, environment: Environment, **_kw: Any) -> None:
        fd_reserve.RESERVE.hold()
        if isinstance(environment.runner, MasterRunner):
            self._await_workers(environment.runner)
        if self.master is not None:
            self.run_id = uuid.uuid4().hex[:12]
            self.master.begin(self.run_id)
        if self.generator is not None:
            self.generator.begin(self.run_id or uuid.uuid4().hex[:12], self._interval_sink(environment))

    def _interval_sink(self, environment: Environment) -> generator_role.IntervalSink:
        master = self.master
        if master is not None:
            return lambda report: master.add_interval("local", report)
        run_id = self.run_id
        return lambda report: messages.send(environment, messages.INTERVAL, messages.tagged(run_id, report))

    def _on_spawning_complete(self, **_kw: Any) -> None:
        """Every user is started (on a worker: the master says every worker is done). Long-lived objects
        move out of the garbage collector's sight, so full collections (tens of ms with thousands of
        clients) stop pausing deliveries."""
        if self.generator is not None:
            self.generator.spawning_complete()
            gc.freeze()

    # -- a run ends ---------------------------------------------------------------------------
    def _on_finish_message(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Worker: the master is ending the measurement; drain and report once."""
        gevent.spawn(self._finish_worker, environment, float(msg.data.get("drain_timeout", 5)))

    def _finish_worker(self, environment: Environment, drain_timeout: float) -> None:
        if self.generator is None:
            return
        reports = self.generator.finish(drain_timeout)
        if reports is not None:
            messages.send(environment, messages.INTERVAL, messages.tagged(self.run_id, reports[0]))
            messages.send(environment, messages.FINAL, messages.tagged(self.run_id, reports[1]))

    def _on_test_stopping(self, environment: Environment, **_kw: Any) -> None:
        self._finish_master()

    def _finish_master(self) -> None:
        if self.master is not None:
            self.master.finish(self.generator.finish if self.generator is not None else None)

    def _on_quitting(self, environment: Environment, **_kw: Any) -> None:
        self._finish_master()
        if self.generator is not None:
            self.generator.shutdown()
        if self.master is not None:
            if not self.master.passed:
                environment.process_exit_code = 1
            self.master.shutdown()


_PLUGIN: RtbenchPlugin | None = None


def setup(provider_name: str, app: bool = False) -> RtbenchPlugin:
    """Install rtbench for one provider in this Locust process (idempotent); ``app``: the todo-app workload."""
    global _PLUGIN
    if _PLUGIN is None:
        _PLUGIN = RtbenchPlugin(provider_name, app)
    return _PLUGIN


def setup_app(argv: list[str] | None = None) -> RtbenchPlugin:
    """Install rtbench for the todo-app workload on the provider ``--provider`` names (exit 2 if unknown)."""
    name = options.provider_from_argv(sys.argv[1:] if argv is None else argv)
    if name not in providers.available():
        fail_usage(f"--provider: unknown provider {name!r} (known: {', '.join(providers.available())})")
    return setup(name, app=True)
