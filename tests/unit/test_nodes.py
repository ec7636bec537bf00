"""Per server node (``X-Rtbench-Node``): the header read from literal response bytes, each subscription
window keeping the node its connection landed on, and exact per-node accounting and latency."""

from __future__ import annotations

import pytest

from harness.measure import hist, probe
from harness.measure.accounting import UNNAMED_NODE, SubscriberRecord, account
from harness.measure.recorder import Recorder
from harness.protocols import http1
from harness.protocols import websocket as ws
from tests.unit.fake_reports import FakeClock, fake_clock

T = 1_767_225_600_000_000_000
US = 1000


# -- the header ---------------------------------------------------------------------------------------
def test_the_node_is_read_from_an_event_stream_head() -> None:
    parser = http1.ResponseParser()
    head, body = parser.feed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-rtbench-node:  socketio-2 \r\n"
        b"Transfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n"
    )
    assert isinstance(head, http1.Head) and isinstance(body, http1.Body)
    assert http1.server_node(head.headers.get(http1.NODE_HEADER)) == "socketio-2"


def test_the_node_is_read_from_a_websocket_upgrade() -> None:
    key = ws.new_key()
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ws.accept_for(key).encode() + b"\r\nX-Rtbench-Node: node-b\r\n\r\n"
    )
    parsed = ws.parse_handshake_response(response, key)
    assert parsed is not None
    headers, length = parsed
    assert length == len(response)
    assert http1.server_node(headers.get(http1.NODE_HEADER.lower())) == "node-b"


@pytest.mark.parametrize(
    ("value", "node"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("a", "a"),
        ("\tn1.example:3001 ", "n1.example:3001"),
        ("a, b", None),  # repeated fields joined: which one answered is unknown
        ("x" * 64, "x" * 64),
        ("x" * 65, None),
        ("node 1", None),
        ('"quoted"', None),
        ("caf\xe9", None),
    ],
)
def test_only_a_short_visible_token_names_a_node(value: str | None, node: str | None) -> None:
    assert http1.server_node(value) == node


# -- one subscriber's windows ---------------------------------------------------------------------------
def test_each_window_keeps_the_node_it_opened_on_and_a_move_while_subscribed_splits_it() -> None:
    record = SubscriberRecord("c")
    record.move_to("a", 5)  # not subscribed yet: nothing to split
    record.open_window(10)
    record.move_to("a", 15)  # the same node: nothing happens
    record.move_to("b", 20)
    record.close_window(30)
    record.open_window(40)  # back on b
    wire = record.to_wire(end_ns=50)
    assert wire["windows"] == [[10, 20], [20, 30], [40, 50]]
    assert wire["nodes"] == ["a", "b", "b"]


def test_a_subscriber_that_never_heard_of_a_node_keeps_the_old_wire_form() -> None:
    record = SubscriberRecord("c", windows=[[10, 20]])  # as older records and tests make it
    record.open_window(30)
    assert record.to_wire(end_ns=40) == {"channel": "c", "windows": [[10, 20], [30, 40]], "streams": {}}
    record.move_to("a", 35)
    assert record.to_wire(end_ns=40)["nodes"] == [None, None, "a"]


# -- the recorder: a subscriber that moves node on a reconnect ---------------------------------------------
def _deliver(rec: Recorder, sub: SubscriberRecord, seq: int, latency_us: int) -> None:
    due = T + seq * 10
    rec.delivered_to(sub, probe.encode("run", "p.0", seq, due, 64), due + latency_us * US)


def _moving_run(clock: FakeClock) -> Recorder:
    """``mover`` lands on a, gets 0 and 1 (2 is lost), drops; 3 is sent while it is away (owed on a: nobody
    asked it to leave); it comes back on b and gets 4 and 5. ``stayer`` is on b throughout and gets 0..4
    (5 is lost). Steady state from T."""
    mover_gets = {0: 1000, 1: 1100, 4: 1400, 5: 1500}  # seq: latency us
    stayer_gets = {0: 200, 1: 300, 2: 400, 3: 500, 4: 600}
    rec = Recorder("run")
    rec.steady_from_ns = T
    ledger = rec.ledger("p.0", "c")
    clock.now_ns = T
    mover, stayer = rec.new_subscriber("c"), rec.new_subscriber("c")
    rec.landed(mover, "a")
    rec.landed(stayer, "b")
    mover.open_window(T)
    stayer.open_window(T)
    for seq in range(6):
        clock.now_ns = T + seq * 10
        if seq == 3:
            clock.now_ns -= 5
            rec.dropped(mover)
            clock.now_ns += 5
        if seq == 4:
            clock.now_ns -= 5
            rec.landed(mover, "b")  # the reconnect's upgrade is answered by b
            rec.resubscribed(mover)
            clock.now_ns += 5
        rec.published(ledger, T + seq * 10, T + seq * 10)
        if seq in mover_gets:
            _deliver(rec, mover, seq, mover_gets[seq])
        if seq in stayer_gets:
            _deliver(rec, stayer, seq, stayer_gets[seq])
    return rec


def test_deliveries_go_to_the_node_the_subscriber_was_on_and_windows_account_per_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = fake_clock(monkeypatch)
    rec = _moving_run(clock)
    final = rec.final_report(end_ns=T + 100)
    by_node = {node: hist.decode(encoded) for node, encoded in final.get("node_latency", {}).items()}
    assert list(by_node) == ["a", "b"]
    assert by_node["a"].get_total_count() == 2
    assert (by_node["a"].get_min_value(), by_node["a"].get_max_value()) == (1000, 1100)
    assert by_node["b"].get_total_count() == 7  # mover's 4 and 5, stayer's 0..4
    assert by_node["b"].get_min_value() == 200 and by_node["b"].get_max_value() == 1500
    mover, stayer = final["subscribers"]
    assert mover["windows"] == [[T, T + 35], [T + 35, T + 100]] and mover["nodes"] == ["a", "b"]
    assert stayer["windows"] == [[T, T + 100]] and stayer["nodes"] == ["b"]
    totals = account(final["ledgers"], final["subscribers"])
    a, b = totals.nodes["a"], totals.nodes["b"]
    assert (a.subscribers, a.windows, a.expected, a.delivered, a.lost) == (1, 1, 4, 2, 2)  # 0..3; 2, 3 lost
    assert (b.subscribers, b.windows, b.expected, b.delivered, b.lost) == (2, 2, 8, 7, 1)  # 4, 5 + 0..5; 5 lost
    assert list(totals.nodes) == ["a", "b"]
    assert (totals.expected, totals.delivered, totals.lost) == (12, 9, 3)  # the run's totals: the same windows


def test_windows_that_named_no_node_are_unnamed_when_others_did(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = fake_clock(monkeypatch)
    rec = Recorder("run")
    ledger = rec.ledger("p.0", "c")
    clock.now_ns = T
    named, silent = rec.new_subscriber("c"), rec.new_subscriber("c")
    rec.landed(named, "a")
    rec.landed(silent, None)  # its server did not say
    named.open_window(T)
    silent.open_window(T)
    for seq in range(3):
        rec.published(ledger, T + 1 + seq, T + 1 + seq)
        _deliver(rec, named, seq, 100)
        _deliver(rec, silent, seq, 100)
    final = rec.final_report(end_ns=T + 100)
    assert list(final.get("node_latency", {})) == ["a"]
    totals = account(final["ledgers"], final["subscribers"])
    assert {name: (n.windows, n.expected, n.delivered) for name, n in totals.nodes.items()} == {
        "a": (1, 3, 3),
        UNNAMED_NODE: (1, 3, 3),
    }


def test_without_any_node_nothing_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = fake_clock(monkeypatch)
    rec = Recorder("run")
    ledger = rec.ledger("p.0", "c")
    clock.now_ns = T
    sub = rec.new_subscriber("c")
    rec.landed(sub, None)
    sub.open_window(T)
    rec.published(ledger, T + 1, T + 1)
    _deliver(rec, sub, 0, 100)
    final = rec.final_report(end_ns=T + 100)
    assert "node_latency" not in final and "nodes" not in final["subscribers"][0]
    assert sub.node_latency is None and rec.node_latency == {}
    assert account(final["ledgers"], final["subscribers"]).nodes == {}
