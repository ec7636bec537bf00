"""The options every scenario shares (DESIGN: custom Locust options), and their validation.

Options only one provider uses (``--timestamp-field``, ``--event``, ...) belong to that provider's spec
(``Provider.add_arguments`` / ``validate``), not here.

Registered through Locust's ``init_command_line_parser`` so they show in ``--help`` and the web UI.
Validation happens once, on the master (or the only process), and reports one line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.measure import gates, refetch
from harness.net.chromium import CHROMIUM_ENV, find_chromium
from harness.providers import presence
from harness.report import files

DEFAULT_PUBLISH_RATE = 10.0
CLIENTS = ("lean", "official")
MAX_PAYLOAD_BYTES = 1024 * 1024


#: the app's todos collection on the reference targets (targets/todos.py)
DEFAULT_TODOS_PATH = "/api/todos"
#: the official browser clients' npm packages (``browser/package.json``: ``npm ci --prefix browser``)
DEFAULT_BROWSER_CLIENTS = Path(__file__).resolve().parents[2] / "browser" / "node_modules"
BROWSER_CLIENTS_ENV = "RTBENCH_BROWSER_CLIENTS"


class OptionError(ValueError):
    """A bad option; the message is the one line the user sees."""


def add_arguments(parser: Any) -> Any:
    group = parser  # Locust's own parser: its add_argument knows include_in_web_ui; groups do not
    group.add_argument(
        "--publish-rate",
        type=str,
        default=str(DEFAULT_PUBLISH_RATE),
        help="messages per second published in total, on a fixed open-model schedule",
    )
    group.add_argument(
        "--channels", type=str, default="1", help="channels (rooms); subscribers are spread over them round robin"
    )
    group.add_argument("--payload-bytes", type=str, default="256", help="size of each published payload")
    group.add_argument(
        "--gate",
        action="append",
        default=None,
        include_in_web_ui=False,
        help="pass/fail gate, repeatable, e.g. 'p99<50ms' 'loss==0' (default: p99<50ms and loss==0)",
    )
    group.add_argument(
        "--report-dir",
        default="",
        help="folder for summary.json and latency.hlog (default reports/<provider>-<UTC time>)",
    )
    group.add_argument(
        "--drain-timeout", type=str, default="5", help="seconds to wait for in-flight deliveries after publishing stops"
    )
    group.add_argument(
        "--client",
        choices=CLIENTS,
        default="lean",
        help="subscribers: lean protocol clients timed at the socket (kernel receive time, default), "
        "or the provider's official library timed in its callback where one exists",
    )
    group.add_argument(
        "--warmup",
        type=str,
        default="1",
        help="seconds after spawning completes still counted as ramp-up (default 1); the headline "
        "figures and the verdict are the steady state after it",
    )
    group.add_argument(
        "--browser-probes",
        type=str,
        default="0",
        help="also open N headless Chromium pages subscribed with the provider's official browser client, "
        "timed in the page: browser_latency_ms, apart from the socket-level figures (needs Debian's chromium)",
    )
    group.add_argument(
        "--browser-clients",
        type=str,
        default="",
        include_in_web_ui=False,
        help="folder holding the official browser clients' npm packages (default: $RTBENCH_BROWSER_CLIENTS, "
        "else browser/node_modules of this checkout: npm ci --prefix browser)",
    )
    return group


def browser_clients_dir(options: argparse.Namespace) -> Path:
    """Where the pages' client bundles are read from (``--browser-clients``)."""
    given = str(getattr(options, "browser_clients", "") or os.environ.get(BROWSER_CLIENTS_ENV, "")).strip()
    return Path(given) if given else DEFAULT_BROWSER_CLIENTS


def browser_probes(options: argparse.Namespace) -> int:
    """``--browser-probes`` as a count (a worker's options were never validated: 0 when unreadable)."""
    try:
        return max(0, int(getattr(options, "browser_probes", 0) or 0))
    except (TypeError, ValueError):
        return 0


def validate_browser(options: argparse.Namespace, bundle: str | None) -> str:
    """With ``--browser-probes N``: Chromium must be installed and the provider's browser client present.
    Returns the Chromium binary ('' without probes); raises OptionError in one line otherwise."""
    options.browser_probes = _number(options, "browser_probes", int, 0, 1000)
    if not options.browser_probes:
        return ""
    binary = find_chromium()
    if binary is None:
        raise OptionError(
            "--browser-probes: no Chromium found (install Debian's chromium: apt-get install -y chromium; "
            f"or name one in ${CHROMIUM_ENV})"
        )
    clients = browser_clients_dir(options)
    if bundle and not (clients / bundle).is_file():
        raise OptionError(
            f"--browser-probes: the browser client {bundle} is not in {clients} "
            "(npm ci --prefix browser, or give --browser-clients DIR)"
        )
    options.browser_clients = str(clients)
    return binary


def add_app_arguments(parser: Any, provider: str) -> None:
    """The todo-app workload's options (scenarios/todo_app.py); ``--provider`` was read before parsing
    (the provider's own options depend on it) and is registered so it shows in ``--help``."""
    parser.add_argument(
        "--provider",
        default=provider,
        include_in_web_ui=False,
        help="todo app: the push provider the app's events go through (socketio, sse, pusher, ably)",
    )
    parser.add_argument(
        "--mutation-rate",
        type=str,
        default="5",
        help="todo app: mutations the writers make per second in total, on a fixed open-model schedule",
    )
    parser.add_argument(
        "--mutation-mix",
        type=str,
        default="1:0:0",
        help="todo app: CREATE:UPDATE:DELETE weights of the writers' mutations (POST, PATCH, DELETE /api/todos), "
        "e.g. 2:2:1; a writer updates and deletes only todos it created (default: 1:0:0, creates only)",
    )
    parser.add_argument(
        "--optimistic",
        action="store_true",
        help="todo app: writers apply each mutation locally first and roll it back when the API refuses it "
        "(counted as rollbacks, by reason)",
    )
    parser.add_argument(
        "--mutations",
        type=str,
        default="0",
        help="todo app: create this many todos in all, then stop (a burst at --mutation-rate); 0: until the end",
    )
    parser.add_argument(
        "--refetch",
        choices=refetch.POLICIES,
        default=refetch.DEFAULT_POLICY,
        help="todo app: how a reader refetches GET /api/todos on each event: none, always (one GET per "
        "event), coalesced (TanStack Query: one in flight, one follow-up; default)",
    )
    parser.add_argument(
        "--stale-ms",
        type=str,
        default="0",
        help="todo app: a reader holds a fetched list as fresh this long (TanStack's staleTime): an event "
        "then owes one refetch for when it goes stale instead of refetching at once (default: 0)",
    )
    parser.add_argument(
        "--refetch-jitter-ms",
        type=str,
        default="0",
        help="todo app: each refetch an event starts waits a random 0..MS first, as clients spread out by "
        "render and scheduling delays (default: 0)",
    )
    parser.add_argument(
        "--api-delay-ms",
        type=str,
        default="0",
        help="todo app: the embedded target holds every GET /api/todos answer this long (a slow list query)",
    )
    parser.add_argument(
        "--api-base",
        type=str,
        default="",
        help="todo app: where the app's REST API lives when not on the push host, e.g. http://127.0.0.1:3000 "
        "(default: --host, or the embedded target)",
    )
    parser.add_argument(
        "--todos-path",
        type=str,
        default=DEFAULT_TODOS_PATH,
        help=f"todo app: the todos collection under the API base (default: {DEFAULT_TODOS_PATH})",
    )
    parser.add_argument(
        "--app-event",
        type=str,
        default="",
        help="todo app: the event names (comma-separated) readers treat as invalidations (default: the "
        "provider's, todo:created,todo:updated,todo:deleted on Socket.IO, Pusher and Ably, message on SSE)",
    )
    parser.add_argument(
        "--presence",
        action="store_true",
        default=False,
        help="todo app: readers also join room 'todos' as presence members (Pusher presence channel, Ably "
        "presence, Socket.IO presence:join on the reference target): member_added/removed latency, the storm",
    )


def validate_app(options: argparse.Namespace, app_events: tuple[str, ...]) -> None:
    """Normalise the app's options in place: its events on one channel, under the provider's event names
    unless ``--app-event`` names the user's; the API at ``--api-base`` (or the push host) + ``--todos-path``."""
    options.mutation_rate = _number(options, "mutation_rate", float, 0.001, 100_000)
    options.api_delay_ms = _number(options, "api_delay_ms", float, 0, 60_000)
    options.mutations = _number(options, "mutations", int, 0, 10_000_000)
    options.stale_ms = _number(options, "stale_ms", float, 0, 3_600_000)
    options.refetch_jitter_ms = _number(options, "refetch_jitter_ms", float, 0, 60_000)
    options.mutation_mix = mutation_mix(str(getattr(options, "mutation_mix", "1:0:0")))
    options.publish_rate = options.mutation_rate  # what the run publishes (summary.json load.publish_rate)
    if int(options.channels) != 1:
        raise OptionError("--channels: the todo app's events go to every reader on one channel")
    options.events = _app_events(str(getattr(options, "app_event", "") or "")) or app_events
    options.event = options.events[0]
    options.api_base = _api_base(str(getattr(options, "api_base", "") or ""))
    options.todos_path = _todos_path(str(getattr(options, "todos_path", DEFAULT_TODOS_PATH)))
    provider = str(getattr(options, "provider", ""))
    if getattr(options, "presence", False) and not presence.supports(provider):
        raise OptionError(f"--presence: {provider} has no presence (it has: {', '.join(sorted(presence.MEMBERS))})")


def _api_base(raw: str) -> str:
    """An absolute http(s) URL without query or fragment, its trailing slash dropped; "" when not given."""
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise OptionError(f"--api-base must be an http:// or https:// URL without query, got {raw!r}")
    return raw.rstrip("/")


def _todos_path(raw: str) -> str:
    if not raw.startswith("/") or any(c.isspace() or c in "?#" for c in raw) or len(raw) > 500:
        raise OptionError(f"--todos-path must be a path starting with / (no spaces, query or fragment), got {raw!r}")
    return raw.rstrip("/") or "/"


def _app_events(raw: str) -> tuple[str, ...]:
    """Comma-separated event names, each without spaces; () when none are given."""
    if not raw:
        return ()
    names = tuple(raw.split(","))
    if any(not name or any(c.isspace() for c in name) or len(name) > 200 for name in names):
        raise OptionError(f"--app-event must be event names without spaces, separated by commas, got {raw!r}")
    return names


def mutation_mix(raw: str) -> tuple[int, int, int]:
    """``CREATE:UPDATE:DELETE`` weights: three whole numbers, creates above 0 (updates and deletes need todos)."""
    parts = raw.split(":")
    try:
        weights = tuple(int(part) for part in parts)
    except ValueError:
        weights = ()
    if len(weights) != 3 or min(weights) < 0 or weights[0] < 1 or max(weights) > 1000:
        raise OptionError(
            f"--mutation-mix must be CREATE:UPDATE:DELETE whole numbers (0..1000, CREATE at least 1), got {raw!r}"
        )
    return weights[0], weights[1], weights[2]


def target_args(options: argparse.Namespace) -> list[str]:
    """What the embedded target is started with: the app's ``--api-delay-ms`` when one is asked for."""
    delay = float(getattr(options, "api_delay_ms", 0) or 0)
    return ["--api-delay-ms", f"{delay:g}"] if delay else []


def _number(options: argparse.Namespace, name: str, kind: type, low: float, high: float | None = None) -> Any:
    flag = "--" + name.replace("_", "-")
    raw = getattr(options, name)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise OptionError(f"{flag} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # nan compares false with every bound and would slip through
        raise OptionError(f"{flag} must be a finite number, got {raw}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise OptionError(f"{flag} must be {bound}, got {raw}")
    return value


def validate(options: argparse.Namespace) -> list[gates.Gate]:
    """Normalise the shared options in place; returns the parsed gates. Raises OptionError."""
    options.publish_rate = _number(options, "publish_rate", float, 0.001, 1_000_000)
    options.channels = _number(options, "channels", int, 1, 100_000)
    options.payload_bytes = _number(options, "payload_bytes", int, 0, MAX_PAYLOAD_BYTES)
    options.drain_timeout = _number(options, "drain_timeout", float, 0, 3600)
    options.warmup = _number(options, "warmup", float, 0, 3600)
    users = getattr(options, "num_users", None)  # Locust's -u; None when not given (the web UI asks)
    if users is not None and users < 1:
        raise OptionError(f"-u/--users must be at least 1, got {users}")
    try:
        parsed = gates.parse_all(options.gate)
    except gates.GateError as exc:
        raise OptionError(str(exc)) from None
    options.gate = [g.expr for g in parsed]
    if options.report_dir:  # checked now, not when the first interval is written with every user spawned
        try:
            files.prepare_folder(Path(options.report_dir))
        except files.FolderError as exc:
            raise OptionError(str(exc)) from None
    return parsed


DEFAULT_APP_PROVIDER = "socketio"


def provider_from_argv(argv: list[str]) -> str:
    """``--provider P`` (or ``--provider=P``) from the command line, read before Locust parses it: the
    provider decides which options exist. Default socketio."""
    for i, arg in enumerate(argv):
        if arg == "--provider" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--provider="):
            return arg.split("=", 1)[1]
    return DEFAULT_APP_PROVIDER
