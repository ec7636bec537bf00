"""Golden frames for the Engine.IO v4 / Socket.IO v5 client codec: literal text in, literal events out.

Expected values come from the protocol documents (engine.io-protocol v4, socket.io-protocol v5: their
worked examples and sample session), not from running the codec.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from harness.protocols.engineio import (
    Ack,
    ClientSession,
    Closed,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    Handshake,
    Opened,
    Packet,
    PacketType,
    Ping,
    Pong,
    ProtocolError,
    decode_packet,
    encode_ack,
    encode_connect,
    encode_disconnect,
    encode_event,
    encode_pong,
    parse_open,
    websocket_target,
    websocket_url,
)

OPEN = '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
HANDSHAKE = Handshake("lv_VI97HAXpY6yYWAAAC", 25000, 20000, 1000000, ())
PROBE = "rtb1|run-1|pub-0|17|1712345678901234567|xxxx"


def opened(namespaces: tuple[str, ...] = ("/",), auth: dict[str, Any] | None = None) -> ClientSession:
    session = ClientSession(namespaces, auth)
    assert session.feed_text(OPEN) == [Opened(HANDSHAKE)]
    return session


def connected(namespaces: tuple[str, ...] = ("/",)) -> ClientSession:
    session = opened(namespaces)
    session.data_to_send()
    for i, ns in enumerate(namespaces):
        prefix = "" if ns == "/" else ns + ","
        assert session.feed_text(f'40{prefix}{{"sid":"s{i}"}}') == [Connected(f"s{i}", ns)]
    return session


# -- URL ----------------------------------------------------------------------------------------------


def test_websocket_target_and_url() -> None:
    assert websocket_target() == "/socket.io/?EIO=4&transport=websocket"
    assert websocket_target("/my/path/") == "/my/path/?EIO=4&transport=websocket"
    assert websocket_target(query={"token": "a b", "EIO": "3"}) == "/socket.io/?token=a+b&EIO=4&transport=websocket"
    assert websocket_url("http://127.0.0.1:3001") == "ws://127.0.0.1:3001/socket.io/?EIO=4&transport=websocket"
    assert websocket_url("https://example.com/") == "wss://example.com/socket.io/?EIO=4&transport=websocket"
    assert websocket_url("ws://[::1]:80", path="rt") == "ws://[::1]:80/rt/?EIO=4&transport=websocket"
    for bad in ("http://host/admin", "ftp://host", "127.0.0.1:3001", "http://host?x=1"):
        with pytest.raises(ValueError):
            websocket_url(bad)


# -- open packet --------------------------------------------------------------------------------------


def test_parse_open_spec_example() -> None:
    text = (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,'
        '"maxPayload":1000000}'
    )
    handshake = parse_open(text)
    assert handshake == Handshake("lv_VI97HAXpY6yYWAAAC", 25000, 5000, 1000000, ("websocket",))
    assert handshake.ping_deadline_s == 30.0


def test_parse_open_without_optional_keys() -> None:
    assert parse_open('0{"sid":"a","pingInterval":300,"pingTimeout":200.0}') == Handshake("a", 300, 200, None, ())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "open packet: payload is not a JSON object"),
        ('0["sid"]', "open packet: payload is not a JSON object"),
        ('0{"sid":', "bad JSON: Expecting value"),
        ('0{"pingInterval":1,"pingTimeout":1}', "open packet: no sid"),
        ('0{"sid":"","pingInterval":1,"pingTimeout":1}', "open packet: no sid"),
        ('0{"sid":"a","pingInterval":"25000","pingTimeout":1}', "open packet: pingInterval must be a positive number"),
        ('0{"sid":"a","pingInterval":true,"pingTimeout":1}', "open packet: pingInterval must be a positive number"),
        ('0{"sid":"a","pingInterval":1,"pingTimeout":0}', "open packet: pingTimeout must be a positive number"),
        ('0{"sid":"a","pingInterval":1,"pingTimeout":Infinity}', "bad JSON: Infinity is not JSON"),
        (
            '0{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":-1}',
            "open packet: maxPayload must be a positive number",
        ),
        (
            '0{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":"websocket"}',
            "open packet: upgrades is not a list of strings",
        ),
        ('4{"sid":"a"}', 'not an open packet: \'4{"sid":"a"}\''),
    ],
)
def test_parse_open_rejects(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_open(text)
    assert info.value.reason == reason


# -- Socket.IO packets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "packet"),
    [  # the encoded examples of socket.io-protocol v5
        ("0", Packet(PacketType.CONNECT)),
        (
            '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
            Packet(PacketType.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        ),
        ('4{"message":"Not authorized"}', Packet(PacketType.CONNECT_ERROR, "/", {"message": "Not authorized"})),
        ('2["foo"]', Packet(PacketType.EVENT, "/", ["foo"])),
        ('2/admin,["bar"]', Packet(PacketType.EVENT, "/admin", ["bar"])),
        ('212["foo"]', Packet(PacketType.EVENT, "/", ["foo"], 12)),
        ('3/admin,13["bar"]', Packet(PacketType.ACK, "/admin", ["bar"], 13)),
        ("1", Packet(PacketType.DISCONNECT)),
        ("1/admin,", Packet(PacketType.DISCONNECT, "/admin")),
        # beyond the examples: an ACK with no values, whitespace JSON allows, a namespace with no comma at the end
        ("30[]", Packet(PacketType.ACK, "/", [], 0)),
        ('2 ["a", 1] ', Packet(PacketType.EVENT, "/", ["a", 1])),
        ("1/admin", Packet(PacketType.DISCONNECT, "/admin")),
        ('4"Invalid namespace"', Packet(PacketType.CONNECT_ERROR, "/", "Invalid namespace")),
    ],
)
def test_decode_packet_spec_examples(text: str, packet: Packet) -> None:
    assert decode_packet(text) == packet
    assert decode_packet("4" + text, 1) == packet  # as it sits in an Engine.IO message frame


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty Socket.IO packet"),
        ("7", "unknown Socket.IO packet type '7'"),
        ("x", "unknown Socket.IO packet type 'x'"),
        ('51-["baz",{"_placeholder":true,"num":0}]', "binary attachments are not supported"),
        ('61-15["bar",{"_placeholder":true,"num":0}]', "binary attachments are not supported"),
        ('2{"name":"foo"}', "EVENT payload is not a non-empty array"),
        ('2"foo"', "EVENT payload is not a non-empty array"),
        ("2[]", "EVENT payload is not a non-empty array"),
        ("2", "EVENT payload is not a non-empty array"),
        ("2[1]", "EVENT name is not a string"),
        ('2["foo"', "bad JSON: Expecting ',' delimiter"),
        ('2["foo"]]', "bad JSON: Extra data"),
        ('2["foo",NaN]', "bad JSON: NaN is not JSON"),
        ("2" + "[" * 100_000, "JSON nested too deeply"),
        ('3["bar"]', "ACK without an ack id"),
        ('31{"a":1}', "ACK payload is not an array"),
        ("0[1]", "CONNECT payload is not an object"),
        ('01{"sid":"a"}', "CONNECT with an ack id"),
        ("4[]", "CONNECT_ERROR payload is not an object"),
        ("4", "CONNECT_ERROR payload is not an object"),
        ("1{}", "DISCONNECT with a payload"),
        ("11", "DISCONNECT with an ack id"),
        ("2" + "1" * 16 + '["a"]', "ack id too long"),
    ],
)
def test_decode_packet_rejects(text: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_packet(text)
    assert info.value.reason == reason


# -- encoders -----------------------------------------------------------------------------------------


def test_encoders_golden() -> None:
    assert encode_connect() == "40"
    assert encode_connect("/admin") == "40/admin,"
    assert encode_connect(auth={"token": "123"}) == '40{"token":"123"}'
    assert encode_connect("/admin", {"token": "123"}) == '40/admin,{"token":"123"}'
    assert encode_event("foo") == '42["foo"]'
    assert encode_event("message", PROBE) == '42["message","' + PROBE + '"]'
    assert (
        encode_event("hey", "Jude", {"é": 1.5, "n": None, "q": '"\\'})
        == '42["hey","Jude",{"é":1.5,"n":null,"q":"\\"\\\\"}]'
    )
    assert encode_event("tellme", namespace="/admin", ack_id=1) == '42/admin,1["tellme"]'  # the sample session
    assert encode_event("foo", ack_id=12) == '4212["foo"]'
    assert encode_ack(13, "bar", namespace="/admin") == '43/admin,13["bar"]'
    assert encode_ack(12) == "4312[]"
    assert encode_disconnect() == "41"
    assert encode_disconnect("/admin") == "41/admin,"
    assert encode_pong() == "3"
    assert encode_pong("probe") == "3probe"


def test_encoders_reject() -> None:
    calls: list[Callable[[], object]] = [
        lambda: encode_connect("admin"),
        lambda: encode_connect("/a,b"),
        lambda: encode_connect(auth=["token"]),  # type: ignore[arg-type]
        lambda: encode_event(1),  # type: ignore[arg-type]
        lambda: encode_event("x", float("nan")),
        lambda: encode_event("x", ack_id=-1),
        lambda: encode_event("x", ack_id=True),
        lambda: encode_event("x", ack_id=10**15),
        lambda: encode_ack(1.0),  # type: ignore[arg-type]
        lambda: encode_disconnect("admin"),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def test_encoded_event_decodes_back() -> None:
    args = [PROBE, {"nested": [1, None, True, "ü"]}, -2.5]
    text = encode_event("message", *args, namespace="/chat", ack_id=7)
    assert decode_packet(text, 1) == Packet(PacketType.EVENT, "/chat", ["message", *args], 7)


# -- the session --------------------------------------------------------------------------------------


def test_session_handshake_connect_event_ping_close() -> None:
    session = ClientSession()
    assert session.data_to_send() == []
    assert session.feed_text(OPEN) == [Opened(HANDSHAKE)]
    assert session.handshake == HANDSHAKE
    assert session.data_to_send() == ["40"]
    assert session.data_to_send() == []
    assert not session.connected()
    assert session.feed_text('40{"sid":"wZX3oN0bSVIhsaknAAAI"}') == [Connected("wZX3oN0bSVIhsaknAAAI")]
    assert session.connected() and session.sids == {"/": "wZX3oN0bSVIhsaknAAAI"}
    assert session.feed_text('42["message","' + PROBE + '"]') == [Event("message", [PROBE])]
    assert session.feed_text('42["hey","Jude",{"a":[1,2]},null]') == [Event("hey", ["Jude", {"a": [1, 2]}, None])]
    assert session.feed_text("2") == [Ping("")]
    assert session.data_to_send() == ["3"]
    assert session.feed_text("2probe") == [Ping("probe")]
    assert session.data_to_send() == ["3probe"]
    assert session.feed_text("3probe") == [Pong("probe")]
    assert session.feed_text("6") == []
    assert session.data_to_send() == []
    assert session.feed_text("1") == [Closed()]
    assert session.closed and session.sids == {}
    with pytest.raises(ProtocolError, match=r"^frame after close$"):
        session.feed_text('42["message","x"]')


def test_session_event_escapes_and_unicode() -> None:
    session = connected()
    text = '42["message","a\\"b\\\\c\\u00e9\\ud83d\\ude00 é"]'
    assert session.feed_text(text) == [Event("message", ['a"b\\cé\U0001f600 é'])]


def test_session_default_namespace_ack_id() -> None:
    session = connected()
    assert session.feed_text('425["question",1]') == [Event("question", [1], "/", 5)]
    assert session.feed_text('4312["answer"]') == [Ack(12, ["answer"])]
    assert session.feed_text("430[]") == [Ack(0, [])]


def test_session_namespaces_and_auth() -> None:
    session = opened(("/", "/admin"), auth={"token": "t"})
    assert session.data_to_send() == ['40{"token":"t"}', '40/admin,{"token":"t"}']
    assert session.feed_text('40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}') == [Connected("-G5j-67EZFp-q59rADQM", "/admin")]
    with pytest.raises(ProtocolError, match=r"^EVENT on a namespace not connected: '/'$"):
        session.feed_text('42["early"]')  # "/" asked for, not yet accepted
    assert session.feed_text('40{"sid":"root"}') == [Connected("root")]
    assert session.feed_text('42["x"]') == [Event("x", [])]
    assert session.feed_text('42/admin,["a",1]') == [Event("a", [1], "/admin")]
    assert session.feed_text('42/admin,7["a"]') == [Event("a", [], "/admin", 7)]
    assert session.feed_text('43/admin,3["ok"]') == [Ack(3, ["ok"], "/admin")]
    with pytest.raises(ProtocolError, match=r"^EVENT on a namespace not connected: '/other'$"):
        session.feed_text('42/other,["a"]')
    assert session.feed_text("41/admin,") == [Disconnected("/admin")]
    assert session.sids == {"/": "root"}
    with pytest.raises(ProtocolError, match=r"^EVENT on a namespace not connected: '/admin'$"):
        session.feed_text('42/admin,["a"]')
    assert session.feed_text('42["still"]') == [Event("still", [])]
    assert session.feed_text("41") == [Disconnected()]
    with pytest.raises(ProtocolError, match=r"^EVENT on a namespace not connected: '/'$"):
        session.feed_text('42["gone"]')


def test_session_connect_error() -> None:
    session = opened(("/", "/admin", "/x"))
    assert session.data_to_send() == ["40", "40/admin,", "40/x,"]
    assert session.feed_text('44{"message":"Not authorized","data":{"code":1}}') == [
        ConnectError("Not authorized", "/", {"code": 1})
    ]
    assert session.feed_text('44/admin,"Invalid namespace"') == [ConnectError("Invalid namespace", "/admin")]
    assert session.feed_text('44/x,{"code":3}') == [ConnectError('{"code":3}', "/x")]
    assert not session.connected() and session.sids == {}
    with pytest.raises(ProtocolError, match=r"^CONNECT for a namespace not being connected: '/'$"):
        session.feed_text('40{"sid":"late"}')


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("40", "CONNECT reply without a sid (a Socket.IO v2 server?)"),
        ('40{"sid":7}', "CONNECT reply without a sid (a Socket.IO v2 server?)"),
        ('40/x,{"sid":"a"}', "CONNECT for a namespace not being connected: '/x'"),
        ('44/x,{"message":"no"}', "CONNECT_ERROR for a namespace not being connected: '/x'"),
        ('42["a"]', "EVENT on a namespace not connected: '/'"),
        ("41", "DISCONNECT on a namespace not connected: '/'"),
        (OPEN, "second open packet"),
        ("5", "upgrade packet on a websocket-only session"),
        ("7", "unknown Engine.IO packet type '7'"),
        ("x42", "unknown Engine.IO packet type 'x'"),
        ("", "empty frame"),
        ("4", "empty Socket.IO packet"),
        ('451-["a"]', "binary attachments are not supported"),
    ],
)
def test_session_rejects_after_open(frame: str, reason: str) -> None:
    session = opened()
    with pytest.raises(ProtocolError) as info:
        session.feed_text(frame)
    assert info.value.reason == reason
    # the state is untouched: the session carries on
    assert session.feed_text('40{"sid":"s"}') == [Connected("s")]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('42["message"]x', "bad JSON: Extra data"),
        ('42["message",', "bad JSON: Expecting value"),
        ('42{"message":1}', "EVENT payload is not a non-empty array"),
        ("42[]", "EVENT payload is not a non-empty array"),
        ("42[1,2]", "EVENT name is not a string"),
        ('42["message",NaN]', "bad JSON: NaN is not JSON"),
        ("42[" + "[" * 100_000, "JSON nested too deeply"),
        ("42", "EVENT payload is not a non-empty array"),
        ("4" + "2" * 17 + '["a"]', "ack id too long"),
    ],
)
def test_session_rejects_bad_events(frame: str, reason: str) -> None:
    """Frames that enter the fast path (``42[``) and fall out of it get the checked path's reason."""
    session = connected()
    with pytest.raises(ProtocolError) as info:
        session.feed_text(frame)
    assert info.value.reason == reason
    assert session.feed_text('42["message","ok"]') == [Event("message", ["ok"])]


def test_session_fast_path_whitespace_falls_back_correctly() -> None:
    session = connected()
    assert session.feed_text('42["message", "a"] ') == [Event("message", ["a"])]


@pytest.mark.parametrize("frame", ["40", '42["a"]', "2", "1", "3", "6", "", "x"])
def test_session_expects_open_first(frame: str) -> None:
    session = ClientSession()
    with pytest.raises(ProtocolError, match=r"^(expected the open packet, got .*|empty frame)$"):
        session.feed_text(frame)
    assert session.handshake is None and session.data_to_send() == []


def test_session_binary_frame_rejected() -> None:
    session = connected()
    with pytest.raises(ProtocolError, match=r"^binary frame: attachments are not supported$"):
        session.feed_binary(b"\x04\x01\x02")


def test_session_client_disconnect() -> None:
    session = connected(("/", "/admin"))
    session.disconnect("/admin")
    assert session.data_to_send() == ["41/admin,"]
    with pytest.raises(ProtocolError):
        session.feed_text('42/admin,["a"]')
    with pytest.raises(ValueError):
        session.disconnect("/admin")
    session.disconnect()
    assert session.data_to_send() == ["41"]
    with pytest.raises(ProtocolError):
        session.feed_text('42["a"]')


def test_session_rejects_bad_namespaces() -> None:
    for namespaces in ((), ("/", "/"), ("admin",), ("/a,b",)):
        with pytest.raises(ValueError):
            ClientSession(namespaces)


def test_fast_path_matches_checked_decoder() -> None:
    session = connected()
    for args in (["message", PROBE], ["message"], ["e", {"k": [1.5, None]}, "x" * 2000], ["é", "\u2028"]):
        text = encode_event(*args)
        packet = decode_packet(text, 1)
        assert session.feed_text(text) == [Event(packet.data[0], packet.data[1:], packet.namespace, packet.ack_id)]


def test_nothing_but_protocol_error_escapes() -> None:
    """Every prefix of real frames, and seeded random garbage, either decodes or raises ProtocolError."""
    frames = [
        OPEN,
        '40{"sid":"a"}',
        '40/admin,{"sid":"b"}',
        '42["message","' + PROBE + '"]',
        '42/admin,7["a",{"b":[1,2,{"c":null}]}]',
        '43/admin,13["bar"]',
        '44{"message":"Not authorized"}',
        "41/admin,",
        "2probe",
        "1",
    ]
    rng = random.Random(9)
    alphabet = '0123456789/,[]{}":\\ab \u00e9\ud800-.eE+nulltruefalse'
    garbage = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))) for _ in range(3000)]
    candidates = [f[:i] for f in frames for i in range(len(f) + 1)] + garbage
    outcomes = {"ok": 0, "error": 0}
    for text in candidates:
        session = connected(("/", "/admin"))
        for piece in (text, "4" + text, "42" + text):
            try:
                events = session.feed_text(piece)
            except ProtocolError as exc:
                assert exc.reason
                outcomes["error"] += 1
            else:
                assert isinstance(events, list)
                outcomes["ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["error"] > 100
