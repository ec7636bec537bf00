"""``rtbench check``: the real-time app's checklist against the embedded target or the user's server.

Options of the provider itself (``--sse-path``, ``--pusher-key``, ...) follow the check's own, as in a
run; ``rtbench run PROVIDER --help`` lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.cli.common import EXIT_FAILED, EXIT_OK, Parser, UsageError, add_command

EXAMPLES = """\
items, in order: connection, event (A publishes, B receives), reconnect (the server is killed and
restarted), offline (a client's queued mutations replay once each, in order), performance (every one of
--events events under --budget-ms, timed at the socket).

examples:
  rtbench check socketio                                     # embedded target, restarted by rtbench
  rtbench check all --junit check.xml                        # every provider, one table
  rtbench check sse --host http://127.0.0.1:3000 --restart-cmd 'systemctl restart app'
  rtbench check socketio --host http://127.0.0.1:3000 --kill-cmd 'pkill -9 -f server.js' \\
      --start-cmd './start.sh'
  rtbench check sse --host http://127.0.0.1:3000 --sse-path /api/events   # a provider option

Exit status: 0 every item that ran passed (skipped ones do not count), 1 an item failed, 2 bad usage
(a closed port, a wrong scheme, a bad option)."""


def _bounded(kind: Callable[[str], float], low: float, high: float, *, inclusive_low: bool = False) -> Any:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = value < low if inclusive_low else value <= low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(
                f"must be {'at least' if inclusive_low else 'above'} {low:g} and at most {high:g}, got {text}"
            )
        return value

    return parse


def add_parser(sub: Any, available: str) -> None:
    check = add_command(
        sub,
        "check",
        help="run the real-time app's checklist (connect, event, reconnect, offline, performance)",
        description="Run the real-time app's shipping checklist with real clients, against the provider's "
        "embedded target (default) or your own server (--host), and print PASS / FAIL / SKIP per item "
        "with its figure and reason. " + available,
        epilog=EXAMPLES,
    )
    check.add_argument("provider", metavar="PROVIDER", help="socketio, sse, pusher, ably, or all (embedded targets)")
    check.add_argument("--host", help="your server's URL (default: start the provider's embedded target)")
    check.add_argument("--restart-cmd", metavar="CMD", help="shell command that kills and restarts your server")
    check.add_argument("--kill-cmd", metavar="CMD", help="shell command that kills your server (with --start-cmd)")
    check.add_argument("--start-cmd", metavar="CMD", help="shell command that starts it again on the same port")
    check.add_argument(
        "--command-timeout",
        type=_bounded(float, 0, 3600),
        default=60.0,
        metavar="S",
        help="how long each of those commands may take (default 60)",
    )
    check.add_argument("--junit", metavar="FILE", type=Path, help="write JUnit XML, one testcase per item")
    check.add_argument("--json", metavar="FILE", type=Path, help="write the results as JSON")
    check.add_argument(
        "--budget-ms",
        type=_bounded(float, 0, 60_000),
        default=50.0,
        metavar="MS",
        help="performance: the most any one event may take (default 50)",
    )
    check.add_argument(
        "--events",
        type=_bounded(int, 1, 100_000, inclusive_low=True),
        default=100,
        metavar="N",
        help="performance: events to time (default 100)",
    )
    check.add_argument(
        "--rate",
        type=_bounded(float, 0, 10_000),
        default=20.0,
        metavar="PER_S",
        help="performance: events per second (default 20)",
    )
    check.add_argument(
        "--connect-timeout",
        type=_bounded(float, 0, 600),
        default=5.0,
        metavar="S",
        help="connection: the bound on connecting and subscribing (default 5)",
    )
    check.add_argument(
        "--reconnect-timeout",
        type=_bounded(float, 0, 600),
        default=20.0,
        metavar="S",
        help="reconnect, offline: how long a dropped client may take to come back (default 20: Socket.IO's "
        "1 s doubling to 5 s for 5 attempts, with room)",
    )
    check.add_argument(
        "--target-args",
        default="",
        metavar="ARGS",
        help="extra options for the embedded target, one string: --target-args '--delay-ms 60', or "
        "--target-args=--flag when it is a single flag",
    )


def _provider_options(provider_cls: Any, extra: Sequence[str]) -> argparse.Namespace:
    """The provider's own options (its defaults, or as given after the check's), as a run would have them."""
    from harness.plugin import options as shared
    from harness.providers.base import ProviderConfigError

    class _Group:
        """Locust's parser takes ``include_in_web_ui``; a plain one does not."""

        def __init__(self, parser: Parser) -> None:
            self.parser = parser

        def add_argument(self, *args: Any, include_in_web_ui: bool = True, **kwargs: Any) -> Any:
            return self.parser.add_argument(*args, **kwargs)

    parser = Parser(prog=f"rtbench check {provider_cls.name}", allow_abbrev=False)
    shared.add_arguments(_Group(parser))
    provider_cls.add_arguments(_Group(parser))
    parser.set_defaults(**provider_cls.check_defaults)
    options = parser.parse_args(list(extra))
    options.channels = 1  # one channel: what a plain broadcast server understands
    options.client = "lean"  # timed at the socket, and a client the offline item can cut
    options.host = None
    try:
        provider_cls.validate(options)
    except ProviderConfigError as exc:
        raise UsageError(str(exc)) from None
    return options


def _check_usage(args: argparse.Namespace) -> list[str]:
    from harness import providers

    known = providers.available()
    names = known if args.provider == "all" else [args.provider]
    if args.provider != "all" and args.provider not in known:
        raise UsageError(f"unknown provider {args.provider!r} (known: {', '.join(known)}, all)")
    if args.provider == "all" and (args.host or args.restart_cmd or args.kill_cmd or args.start_cmd):
        raise UsageError("check all runs embedded targets: --host and the restart commands need one provider")
    if args.restart_cmd and (args.kill_cmd or args.start_cmd):
        raise UsageError("give --restart-cmd, or --kill-cmd with --start-cmd, not both")
    if bool(args.kill_cmd) != bool(args.start_cmd):
        raise UsageError("--kill-cmd and --start-cmd go together")
    if (args.restart_cmd or args.kill_cmd) and not args.host:
        raise UsageError("the restart commands are for your own server: give its --host too")
    for path in (args.junit, args.json):
        if path is not None and path.is_dir():
            raise UsageError(f"{path} is a folder, not a file")
    return names


def cmd_check(parser: Parser, args: argparse.Namespace) -> int:
    from harness import providers
    from harness.checklist.items import Settings
    from harness.checklist.outcome import Checklist
    from harness.checklist.render import Redactor, result_line, table, write_outputs

    names = _check_usage(args)
    extra = list(getattr(args, "extra", []) or [])
    if args.provider == "all" and extra:
        raise UsageError(f"provider options ({' '.join(extra)}) need one provider, not all")
    settings = Settings(
        connect_timeout_s=args.connect_timeout,
        reconnect_timeout_s=args.reconnect_timeout,
        budget_ms=args.budget_ms,
        events=int(args.events),
        rate=args.rate,
    )
    try:
        target_args = shlex.split(args.target_args)
    except ValueError as exc:
        raise UsageError(f"--target-args: {exc}") from None
    plans = [(name, providers.load(name)) for name in names]
    prepared = [(name, cls, _provider_options(cls, extra)) for name, cls in plans]  # every usage error first
    patterns = [p for _, cls, _ in prepared for p in cls.secret_patterns]
    redactor = Redactor(patterns)
    done: list[Checklist] = []

    def show(provider: str, result: Any) -> None:
        print(redactor(result_line(provider, result)), flush=True)

    try:
        for _name, cls, options in prepared:
            done.append(Checklist(cls.name, "", ""))
            _check_one(cls, options, args, target_args, settings, done[-1], show, redactor)
    except KeyboardInterrupt:
        write_outputs(done, redactor, junit=args.junit, json_path=args.json)
        sys.stderr.write("rtbench: interrupted: the results so far are written\n")
        return 130
    if len(done) > 1:
        print("\n" + table(done), flush=True)
    write_outputs(done, redactor, junit=args.junit, json_path=args.json)
    return EXIT_OK if all(c.ok for c in done) else EXIT_FAILED


def _check_one(
    cls: Any,
    options: argparse.Namespace,
    args: argparse.Namespace,
    target_args: list[str],
    settings: Any,
    checklist: Any,
    show: Callable[[str, Any], None],
    redactor: Callable[[Any], Any],
) -> None:
    from harness.checklist.restart import NoRestart, restarter_for
    from harness.checklist.run import run_checklist
    from harness.plugin.target_process import EmbeddedTarget, TargetError, check_reachable

    target: EmbeddedTarget | None = None
    host = args.host or cls.cloud_host(options)
    try:
        if args.host:
            check_reachable(args.host, cls.schemes)
        elif host is None:
            target = EmbeddedTarget(cls.target_module, target_args)
            host = target.url
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    checklist.target = "embedded" if target else cls.describe_target(args.host, options)
    checklist.host = host
    restarter = (
        NoRestart()
        if checklist.target == "cloud"
        else restarter_for(target, args.restart_cmd, args.kill_cmd, args.start_cmd, args.command_timeout)
    )
    print(redactor(f"rtbench check {cls.name}: {host} ({checklist.target} target)"), flush=True)
    try:
        asyncio.run(run_checklist(cls, host, options, restarter, settings, checklist, show))
    finally:
        if target is not None:
            target.stop()
