"""The shapes of what the harness reports, so mypy checks every key a producer writes and a reader reads.

Records that cross a process boundary (Locust runner messages between a worker and the master) or land
in summary.json are TypedDicts: they stay plain JSON-ready dicts on the wire and on disk, and key order
is the order written by their producer. summary.json is a user-facing contract (DESIGN schema 1): a new
key here is a schema change. Histograms travel as HdrHistogram's base64 text (``hist.encode``).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# -- histograms in milliseconds (hist.latency_summary / hist.connect_summary) --------------------------


class LatencySummary(TypedDict):
    """A ``*_ms`` block of summary.json; all zeros (integers) when nothing was recorded."""

    count: int
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float
    mean: float


class ConnectSummary(TypedDict):
    """``connect_ms`` and ``reconnect_ms`` (fewer points, as connections are fewer than deliveries), and a
    server node's latency in ``nodes``."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float


# -- accounting wire forms (accounting.StreamTracker / Ledger / SubscriberRecord) ------------------------


class StreamWire(TypedDict):
    """What one subscriber received from one publisher stream."""

    first: int
    next: int
    missing: list[int]
    early: list[int]
    dup: int
    ooo: int


class LedgerWire(TypedDict):
    """When each message of one publisher stream was sent (index = sequence number)."""

    stream_id: str
    channel: str
    sent_ns: list[int]
    failed: list[int]


class SubscriberWire(TypedDict):
    """One subscriber's channel, subscription windows ([start_ns, end_ns]) and streams; ``nodes`` (one
    per window: the server node its connection landed on, null when unnamed) only when a node was named."""

    channel: str
    windows: list[list[int]]
    streams: dict[str, StreamWire]
    nodes: NotRequired[list[str | None]]


# -- a generator's reports (Recorder -> Collector, over Locust messages on a cluster) ----------------


class Counts(TypedDict):
    """The recorder's counters, in this order (``recorder.COUNTER_NAMES`` is read from here)."""

    published: int
    errors: int
    opened: int
    failed: int
    dropped: int
    reconnected: int
    foreign: int
    unrecordable: int
    server_clock: int
    clock_skew: int


class HealthInterval(TypedDict):
    """The generator's own health over one interval, for timeseries.csv."""

    cpu_pct: float
    loop_lag_p99_ms: float


class LiveInterval(TypedDict):
    """What the web UI's live view needs beyond timeseries.csv: this interval's steady-state and ramp
    deliveries apart (``latency`` holds both), and the generator's health histograms and stream counts
    so far, so the master can show the run's figures with the summary's own code while it runs."""

    steady: str
    ramp: str
    publish_lag: str  # cumulative
    client_lag: str  # cumulative
    loop_lag: str  # cumulative
    duplicated: int  # cumulative, over this process's subscribers
    out_of_order: int  # cumulative
    rx_clocks: dict[str, int]
    steady_from_ns: int
    #: per publisher stream, the messages whose slowest delivery here is new or grew this interval
    #: ([sequence numbers, slowest us]); the master keeps each message's maximum (``IntervalTally``)
    fanout: NotRequired[dict[str, list[list[int]]]]


class IntervalReport(HealthInterval):
    """``Recorder.interval_report``: one interval's histograms and counter deltas."""

    start_ms: int
    end_ms: int
    latency: str
    connect: str
    delivered: int
    counts: Counts
    connections: int
    lost: int  # sequence gaps opened minus filled this interval (not losses): summed into timeseries.csv open_gaps
    live: NotRequired[LiveInterval]


class HealthWire(TypedDict):
    """``HealthSamples.to_wire``: loop lag over the whole run and the CPU samples."""

    lag: str
    cpu_samples: list[float]


class RxStamps(TypedDict):
    """Socket reads of one process over the run, and how many messages shared a later read's stamp."""

    reads: int
    unstamped_reads: int
    shared_stamps: int


class AppCounts(TypedDict):
    """The todo-app workload's counters in one generator (``measure/appstats.py``)."""

    mutations: int
    mutation_errors: int
    created: int
    updated: int
    deleted: int
    optimistic_applied: int
    rollbacks: int
    readers: int
    invalidations: int
    deferred: int
    refetches: int
    refetch_errors: int
    coalesced: int
    retries: int
    fresh: int
    ramp_fresh: int
    stale: int
    stale_refetch_failed: int
    stale_unanswered: int
    stale_unlisted: int
    fresh_before_event: int


class AppWire(TypedDict):
    """One generator's todo-app figures: encoded histograms (us) and counters."""

    policy: str
    mutation_rate: float
    mutation: str
    fresh: str
    after_event: str
    refetch: str
    counts: AppCounts
    #: optimistic writers' rollbacks by why the API refused the mutation
    rollbacks_by_reason: NotRequired[dict[str, int]]


class BrowserWire(TypedDict):
    """One generator's browser probes (``--browser-probes``): their own histograms (us) and accounting
    records, never mixed into the socket-level ones; ``measure/browser.py``."""

    pages: int  # pages asked for
    latency: str  # steady state: in-page arrival (performance.timeOrigin + now()) - due time
    ramp: str
    report_lag: str  # page arrival -> the harness heard of it (the DevTools binding's delay)
    delivered: int
    counts: Counts
    error_reasons: dict[str, int]
    subscribers: list[SubscriberWire]


class FinalReport(TypedDict):
    """``Recorder.final_report`` plus ``rx_stamps``, which ``GeneratorSession.finish`` adds."""

    latency: str
    connect: str
    reconnect: str
    ramp: str
    client_lag: str
    publish_lag: str
    fanout: dict[str, list[list[int]]]  # per stream: [sequence numbers, slowest latency us of each]
    rx_clocks: dict[str, int]
    steady_from_ns: int
    delivered: int
    counts: Counts
    error_reasons: dict[str, int]
    ledgers: list[LedgerWire]
    subscribers: list[SubscriberWire]
    health: HealthWire
    rx_stamps: NotRequired[RxStamps]
    #: per server node (``X-Rtbench-Node``), its steady-state latency; only when a connection named one
    node_latency: NotRequired[dict[str, str]]
    #: deliveries whose publisher ran on another host's clock, kept out of every other figure; only when some came
    cross_clock: NotRequired[str]
    #: the todo-app workload's figures (scenarios/todo_app.py); only in such a run
    todo_app: NotRequired[AppWire]
    #: readers as presence members (``--presence``); only in such a run
    presence: NotRequired[PresenceWire]
    #: the browser probes' figures (``--browser-probes``); only from the generator that ran them
    browser: NotRequired[BrowserWire]


# -- summary.json (summary.build, Collector.finalize) ---------------------------------------------------


class LoadRequest(TypedDict):
    """The load the user asked for, as the plugin hands it to ``Collector.finalize``."""

    users: int
    publish_rate: float
    channels: int
    payload_bytes: int


class Load(LoadRequest):
    """summary.json ``load``: the request plus what the run measured of itself."""

    duration_s: float
    processes: int
    #: ``--payload-bytes`` when the probe envelope was longer: ``payload_bytes`` is then the largest sent
    payload_bytes_requested: NotRequired[int]


class Messages(TypedDict):
    """Every message accounted: ``delivered + lost == expected`` exactly."""

    published: int
    publish_failed: int  # refused or unacknowledged publishes: still expected by every subscriber, so lost
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    #: arrivals outside every subscription window (sent just before a subscribe took effect): in both
    #: ``expected`` and ``delivered``, but in no node's breakdown
    outside_windows: NotRequired[int]
    errors: int


class Connections(TypedDict):
    opened: int
    failed: int
    dropped: int
    reconnected: int


class GeneratorHealth(TypedDict):
    """One generator's lateness figures in ``harness.generators``."""

    generator: int
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    publish_lag_p99_ms: float
    publish_lag_max_ms: float
    client_lag_p99_ms: float
    client_lag_max_ms: float
    cpu_peak_pct: float


class LoopLag(TypedDict):
    p99: float
    max: float
    limit: float


class HarnessHealth(TypedDict):
    """summary.json ``harness``: whether the numbers are the provider's, and why not."""

    trustworthy: bool
    reasons: list[str]
    loop_lag_ms: LoopLag
    cpu_peak_pct: float
    generators: list[GeneratorHealth]


class NodeSummary(TypedDict):
    """One server node in summary.json ``nodes``: its subscription windows (and the subscribers they
    belong to), the messages sent in them, and its steady-state delivery latency."""

    subscribers: int
    windows: int
    expected: int
    delivered: int
    lost: int
    latency_ms: ConnectSummary


class SummaryHistograms(TypedDict):
    connect: str
    ramp: str
    fanout: str


class GateResult(TypedDict):
    """One evaluated gate: its expression, the measured value in the threshold's unit, the verdict."""

    expr: str
    value: float
    passed: bool


class RefetchSummary(TypedDict):
    """The readers' refetch stampede: ``GET /api/todos`` requests, their rate, latency and errors."""

    requests: int
    per_s: float
    latency_ms: LatencySummary
    errors: int
    coalesced: int
    retries: int
    #: invalidations that waited for the list to go stale (``--stale-ms``) instead of refetching at once
    deferred: int


class OptimisticSummary(TypedDict):
    applied: int
    rolled_back: int
    rollbacks_by_reason: dict[str, int]


class AppSummary(TypedDict):
    """summary.json ``todo_app``: the app as the workload (issue 14). ``event_ms`` is ``latency_ms`` (the
    app's events are the timed deliveries); ``api_ms`` every /api/todos request, mutations and refetches."""

    policy: str
    mutation_rate: float
    readers: int
    mutations: int
    mutation_errors: int
    #: the mutations answered as asked, by kind (``--mutation-mix``)
    mutations_by_kind: dict[str, int]
    mutation_ms: LatencySummary
    event_ms: LatencySummary
    fresh_ms: LatencySummary
    #: per sample, the event's arrival -> fresh data: what refetching adds to the push
    after_event_ms: LatencySummary
    api_ms: LatencySummary
    refetch: RefetchSummary
    invalidations: int
    fresh: int
    ramp_fresh: int
    stale: int
    #: why the stale ones never became fresh (measure/refetch.py ``STALE_REASONS``), only reasons seen
    stale_by_reason: dict[str, int]
    fresh_before_event: int
    #: ``--optimistic`` writers: mutations applied locally first, and those rolled back (by reason)
    optimistic: NotRequired[OptimisticSummary]
    #: readers as presence members (``--presence``); only in such a run
    presence: NotRequired[PresenceSummary]


class BrowserSummary(TypedDict):
    """summary.json ``browser``: the pages' own accounting (``delivered + lost == expected``, expected = what
    was published on a page's channel while it was subscribed), connections, and how late the harness heard
    of their arrivals (``report_lag_ms``, not part of the latency)."""

    pages: int
    opened: int
    failed: int
    dropped: int
    reconnected: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    outside_windows: int
    errors: int
    errors_by_reason: dict[str, int]
    ramp_ms: LatencySummary
    report_lag_ms: LatencySummary


class Summary(TypedDict):
    """summary.json, in its key order. ``parameters`` is there when the run's options were given."""

    schema: int
    provider: str
    target: str
    run_id: str
    started_at: str
    load: Load
    latency_ms: LatencySummary
    fanout_ms: LatencySummary
    ramp_ms: LatencySummary
    client_lag_ms: LatencySummary
    publish_lag_ms: LatencySummary
    #: deliveries timed against another host's clock (clock-dependent, in no other figure); only when some came
    cross_clock_ms: NotRequired[LatencySummary]
    rx_clock: str
    rx_clocks: dict[str, int]
    connect_ms: ConnectSummary
    messages: Messages
    connections: Connections
    reconnect_ms: ConnectSummary
    #: per server node (``X-Rtbench-Node``), in name order; only when a connection named one
    nodes: NotRequired[dict[str, NodeSummary]]
    #: the todo-app workload (scenarios/todo_app.py); only in such a run
    todo_app: NotRequired[AppSummary]
    #: browser probes (``--browser-probes``): in-page arrival - due time, and their own accounting; only then
    browser_latency_ms: NotRequired[LatencySummary]
    browser: NotRequired[BrowserSummary]
    clock: str  # "harness", or "server" under --timestamp-field
    errors_by_reason: dict[str, int]
    foreign_messages: int
    harness: HarnessHealth
    histograms: SummaryHistograms
    rx_stamps: RxStamps
    steady_from_ns: int | None
    gates: list[GateResult]
    passed: bool
    interrupted: NotRequired[bool]  # present (true) when Ctrl-C ended the run early
    partial: NotRequired[bool]  # present (true) when a generator was lost: its part comes from its intervals
    parameters: NotRequired[dict[str, Any]]


class GeneratorFinal(TypedDict):
    """generators.json: each generator's own figures when there are several."""

    node: str
    latency: str
    delivered: int
    counts: Counts


# -- presence (measure/presence.py) ---------------------------------------------------------------------


class PresenceCounts(TypedDict):
    """One generator's presence counters: members it joined, and the member events its members saw."""

    members: int
    join_failed: int
    listed: int
    added: int
    removed: int
    untimed: int
    foreign: int
    events: int


class PresenceWire(TypedDict):
    """One generator's presence figures: encoded histograms (us), counters, and per-second tallies."""

    counts: PresenceCounts
    join: str
    added: str
    removed: str
    #: second since the epoch -> members joined in it / member_added events received in it (all members)
    join_seconds: dict[str, int]
    event_seconds: dict[str, int]
    #: per member, the member_added events it received in its busiest second
    client_peaks: list[int]


class PresenceRates(TypedDict):
    peak: float
    mean: float


class PresenceSummary(TypedDict):
    """summary.json ``todo_app.presence``: readers as presence members (``--presence``). Every member learns
    of every other once, from the list it got on joining or from a member_added: ``listed + member_added ==
    expected == members * (members - 1)`` when no member left before all had joined (``unaccounted`` 0)."""

    members: int
    join_failed: int
    join_ms: LatencySummary
    member_added: int
    listed: int
    expected: int
    unaccounted: int
    member_removed: int
    member_added_ms: LatencySummary
    member_removed_ms: LatencySummary
    #: member events with no time to compare (another host's clock, or a leave this process did not see)
    untimed: int
    #: member events about members of no rtbench run of this id (another tool's, an earlier run's)
    foreign: int
    #: members joined per second: the busiest second, and members / the span from first to last join
    joins_per_s: PresenceRates
    #: member events received in all (member_added and member_removed, foreign ones included)
    events: int
    #: the join storm: member_added events per second, all members together (the busiest second, and the
    #: events / their span); member_removed are not in it, as the run's end paces the leaves
    events_per_s: PresenceRates
    #: one member's busiest second of member_added events: the largest, and the mean over members
    client_events_per_s: PresenceRates
