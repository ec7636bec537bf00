"""Golden frames for harness.protocols.ably, written by hand from Ably's protocol definition and the
MessagePack spec (not produced by the code under test), so one bug cannot hide on both sides."""

from __future__ import annotations

import pytest

from harness.protocols import ably as proto
from harness.protocols.ably import Action, ErrorInfo, Flag, ProtocolError


def test_action_numbers_match_the_protocol_definition() -> None:
    assert [a.value for a in Action][:17] == list(range(17))
    assert (Action.HEARTBEAT, Action.ACK, Action.NACK, Action.CONNECTED, Action.ERROR) == (0, 1, 2, 4, 9)
    assert (Action.ATTACH, Action.ATTACHED, Action.DETACH, Action.DETACHED) == (10, 11, 12, 13)
    assert (Action.PRESENCE, Action.MESSAGE, Action.SYNC, Action.AUTH) == (14, 15, 16, 17)
    assert (Flag.HAS_PRESENCE, Flag.RESUMED, Flag.ATTACH_RESUME) == (1, 4, 32)
    assert Flag.all_modes() == (1 << 16) | (1 << 17) | (1 << 18) | (1 << 19)


# msgpack: fixmap 0x8N, fixstr 0xaN + bytes, positive fixint as itself
HEARTBEAT_MSGPACK = b"\x81\xa6action\x00"
ACK_MSGPACK = b"\x83\xa6action\x01\xa9msgSerial\x05\xa5count\x02"
CLIENT_MESSAGE_MSGPACK = (
    b"\x84\xa6action\x0f\xa7channel\xa1c\xa9msgSerial\x00\xa8messages\x91\x82\xa4name\xa1e\xa4data\xa2hi"
)


def test_server_frames_in_msgpack() -> None:
    assert proto.encode(proto.heartbeat(), "msgpack") == HEARTBEAT_MSGPACK
    assert proto.encode(proto.ack(5, 2), "msgpack") == ACK_MSGPACK
    assert proto.encode({"action": 15, "messages": [{"data": b"\x00\x01"}]}, "msgpack") == (
        b"\x82\xa6action\x0f\xa8messages\x91\x81\xa4data\xc4\x02\x00\x01"
    )  # bin 8, not str


def test_server_frames_in_json_are_whitespace_free() -> None:
    assert proto.encode(proto.heartbeat("ping-1"), "json") == b'{"action":0,"id":"ping-1"}'
    assert proto.encode(proto.nack(3, 1, ErrorInfo(40009, 400, "too big")), "json") == (
        b'{"action":2,"msgSerial":3,"count":1,"error":{"message":"too big","code":40009,"statusCode":400,'
        b'"href":"https://help.ably.io/error/40009"}}'
    )
    assert proto.encode(proto.error(ErrorInfo.invalid_credentials()), "json") == (
        b'{"action":9,"error":{"message":"Invalid credentials","code":40101,"statusCode":401,'
        b'"href":"https://help.ably.io/error/40101"}}'
    )
    assert proto.encode(proto.attached("room", Flag.RESUMED | Flag.PUBLISH), "json") == (
        b'{"action":11,"channel":"room","flags":131076}'
    )
    assert proto.encode(proto.detached("room"), "json") == b'{"action":13,"channel":"room"}'
    assert proto.encode(proto.closed(), "json") == b'{"action":8}'


def test_connected_carries_complete_connection_details() -> None:
    details = proto.ConnectionDetails(connection_key="abc!xyz", server_id="srv", client_id="ann")
    assert proto.encode(proto.connected("abc", details), "json") == (
        b'{"action":4,"connectionId":"abc","connectionKey":"abc!xyz","connectionDetails":{'
        b'"connectionKey":"abc!xyz","maxMessageSize":65536,"maxInboundRate":250,"maxOutboundRate":250,'
        b'"maxFrameSize":524288,"serverId":"srv","connectionStateTtl":120000,"maxIdleInterval":15000,'
        b'"clientId":"ann"}}'
    )


def test_channel_message_from_the_service() -> None:
    frame = proto.channel_message(
        "c",
        [{"id": "x:0:0", "name": "e", "data": "hi", "timestamp": 7, "connectionId": "x"}],
        message_id="x:0",
        timestamp=7,
        connection_id="x",
    )
    assert proto.encode(frame, "json") == (
        b'{"action":15,"id":"x:0","channel":"c","timestamp":7,"messages":[{"id":"x:0:0","name":"e",'
        b'"data":"hi","timestamp":7,"connectionId":"x"}],"connectionId":"x"}'
    )


def test_decode_client_frames() -> None:
    assert proto.decode(CLIENT_MESSAGE_MSGPACK, "msgpack") == {
        "action": 15,
        "channel": "c",
        "msgSerial": 0,
        "messages": [{"name": "e", "data": "hi"}],
    }
    assert proto.decode('{"action":10,"channel":"c","flags":32}', "json") == {"action": 10, "channel": "c", "flags": 32}
    assert proto.decode(b'{"action":0,"id":"p"}', "json") == {"action": 0, "id": "p"}


@pytest.mark.parametrize(
    ("frame", "fmt"),
    [
        (b"\xc1", "msgpack"),  # 0xc1 is never used in msgpack
        (b"\x81\xa6action", "msgpack"),  # truncated
        ("{}", "msgpack"),  # a text frame on a msgpack connection
        (b"\x92\x01\x02", "msgpack"),  # an array, not a map
        ("{not json", "json"),
        ("[1,2]", "json"),
        ('{"channel":"c"}', "json"),  # no action
        ('{"action":"15"}', "json"),
        ('{"action":true}', "json"),
        (b"\xff\xfe", "json"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame: bytes | str, fmt: str) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.decode(frame, fmt)
    assert info.value.error.code == 40000 and info.value.error.status_code == 400


def test_json_recipients_get_binary_data_as_base64() -> None:
    message = {"action": 15, "messages": [{"data": b"\x00\xff", "encoding": "utf-8"}, {"data": "text"}]}
    assert proto.json_safe(message)["messages"] == [{"data": "AP8=", "encoding": "utf-8/base64"}, {"data": "text"}]
    assert message["messages"][0]["data"] == b"\x00\xff"  # the msgpack frame is built from the original
    plain = {"action": 15, "messages": [{"data": "x"}]}
    assert proto.json_safe(plain) is plain


def test_message_size_counts_data_name_client_id_and_extras() -> None:
    assert proto.message_size({"name": "ab", "data": "h\u00e9llo"}) == 2 + 6
    assert proto.message_size({"data": b"\x00" * 10, "clientId": "me", "extras": {"a": 1}}) == 10 + 2 + 7


def test_connect_params_as_the_official_clients_send_them() -> None:
    python = proto.parse_connect_params({"key": "a.b:c", "v": "5", "format": "msgpack"})
    assert (python.fmt, python.version, python.key, python.echo, python.heartbeats) == (
        "msgpack",
        "5",
        "a.b:c",
        True,
        True,
    )
    js = proto.parse_connect_params(
        {
            "key": "a.b:c",
            "echo": "false",
            "format": "json",
            "heartbeats": "false",
            "v": "6",
            "agent": "ably-js/2.28.0",
            "clientId": "me",
        }
    )
    assert (js.fmt, js.echo, js.heartbeats, js.client_id) == ("json", False, False, "me")
    token = proto.parse_connect_params({"access_token": "tok", "resume": "k!1"})
    assert (token.access_token, token.resume, token.fmt) == ("tok", "k!1", "json")
    assert proto.parse_connect_params({"accessToken": "t2"}).access_token == "t2"


@pytest.mark.parametrize(("query", "code"), [({"format": "xml"}, 40003), ({"v": "99"}, 40017)])
def test_bad_connect_params(query: dict[str, str], code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        proto.parse_connect_params(query)
    assert info.value.error.code == code


def test_keys() -> None:
    assert proto.parse_key("app.key:se:cret") == ("app.key", "se:cret")
    for bad in ("api:key", "app.key", "app.key:", "a.b.c:d", ""):
        with pytest.raises(ProtocolError) as info:
            proto.parse_key(bad)
        assert info.value.error.code == 40101


def test_token_request_mac_matches_ably_python() -> None:
    from ably.types.tokenrequest import TokenRequest

    request = TokenRequest(
        key_name="app.key",
        client_id="me",
        nonce="0123456789abcdef",
        ttl=60000,
        capability='{"*":["*"]}',
        timestamp=1700000000000,
    )
    request.sign_request(b"secret")
    assert (
        proto.token_request_mac(
            "secret",
            key_name="app.key",
            ttl=60000,
            capability='{"*":["*"]}',
            client_id="me",
            timestamp=1700000000000,
            nonce="0123456789abcdef",
        )
        == request.mac
    )
    request = TokenRequest(key_name="app.key", nonce="n" * 16, timestamp=5)
    request.sign_request(b"secret")
    assert (
        proto.token_request_mac(
            "secret", key_name="app.key", ttl=None, capability=None, client_id=None, timestamp=5, nonce="n" * 16
        )
        == request.mac
    )


# -- the client side (the lean subscriber's session) ------------------------------------------------
def test_connect_query_is_ably_js_basic_auth() -> None:
    # ably-js: key in the query for basic auth, echo=false when echoMessages is off, v=6 (protocolVersion)
    assert proto.connect_query("app.k1:se/cret", "msgpack") == (
        "key=app.k1%3Ase%2Fcret&format=msgpack&heartbeats=true&v=6&echo=false"
    )
    assert proto.connect_query("a.b:c", "json", echo=True, heartbeats=False, client_id="me") == (
        "key=a.b%3Ac&format=json&heartbeats=false&v=6&clientId=me"
    )
    # and the target reads it back as the official clients' query
    params = proto.parse_connect_params(
        {"key": "a.b:c", "format": "json", "heartbeats": "true", "v": "6", "echo": "false"}
    )
    assert (params.key, params.fmt, params.echo, params.heartbeats, params.version) == (
        "a.b:c",
        "json",
        False,
        True,
        "6",
    )
    with pytest.raises(ValueError):
        proto.connect_query("a.b:c", "xml")


def test_realtime_host_of_an_endpoint() -> None:
    assert proto.realtime_host() == "main.realtime.ably.net"
    assert proto.realtime_host("") == "main.realtime.ably.net"
    assert proto.realtime_host("nonprod:sandbox") == "sandbox.realtime.ably-nonprod.net"
    assert proto.realtime_host("acme") == "acme.realtime.ably.net"
    for literal in ("realtime.example.com", "127.0.0.1", "::1", "localhost"):
        assert proto.realtime_host(literal) == literal


def test_session_frames_it_sends() -> None:
    json_session = proto.ClientSession("json", "room", "ev")
    with pytest.raises(RuntimeError):
        json_session.attach()  # not before CONNECTED
    json_session.receive('{"action":4,"connectionId":"c1"}')
    assert json_session.attach() == '{"action":10,"channel":"room"}'
    assert json_session.state == "attaching"
    assert json_session.close() == '{"action":7}'
    packed = proto.ClientSession("msgpack", "room", "ev")
    packed.receive(b"\x82\xa6action\x04\xacconnectionId\xa2c1")
    assert packed.attach() == b"\x82\xa6action\x0a\xa7channel\xa4room"
    assert packed.close() == b"\x81\xa6action\x07"


def test_session_connect_attach_and_deliver_in_json() -> None:
    session = proto.ClientSession("json", "room", "ev")
    connected = session.receive(
        '{"action":4,"connectionId":"abc","connectionKey":"abc!x","connectionDetails":{"connectionKey":"abc!x",'
        '"maxMessageSize":65536,"serverId":"srv","connectionStateTtl":120000,"maxIdleInterval":15000},'
        '"error":{"message":"Unable to recover connection","code":80008,"statusCode":400}}'
    )
    assert connected == proto.Connected("abc", 15000, 120000, ErrorInfo(80008, 400, "Unable to recover connection"))
    assert connected.error is not None and not connected.error.fatal
    assert session.state == "connected" and session.connection_id == "abc"
    session.attach()
    attached = session.receive('{"action":11,"channel":"room","flags":983044}')
    assert attached == proto.Attached("room", 983044) and attached.resumed  # 983044 = all modes | RESUMED
    assert not proto.Attached("room", 1 << 16).resumed
    assert session.state == "attached"
    delivered = session.receive(
        '{"action":15,"id":"p:0","channel":"room","timestamp":7,"messages":[{"id":"p:0:0","name":"ev","data":"one"},'
        '{"id":"p:0:1","name":"other","data":"skip"},{"id":"p:0:2","name":"ev","data":"two"}]}'
    )
    assert delivered == proto.Deliveries(["one", "two"])
    assert session.receive('{"action":15,"channel":"elsewhere","messages":[{"name":"ev","data":"x"}]}') == (
        proto.Ignored(15)
    )
    assert session.receive('{"action":0}') == proto.Heartbeat()
    assert session.receive('{"action":0,"id":"h1"}') == proto.Heartbeat("h1")
    assert session.receive('{"action":1,"msgSerial":0,"count":1}') == proto.Ignored(1)
    assert session.receive('{"action":11,"channel":"elsewhere","flags":0}') == proto.Ignored(11)
    assert session.receive('{"action":99}') == proto.Ignored(99)  # a newer action: not ours to act on
    # no name filter: every message on the channel
    every = proto.ClientSession("json", "room", None)
    assert every.receive('{"action":15,"channel":"room","messages":[{"data":"a"},{"name":"x","data":"b"}]}') == (
        proto.Deliveries(["a", "b"])
    )


def test_session_delivers_msgpack_str_and_bin() -> None:
    session = proto.ClientSession("msgpack", "c", "e")
    session.receive(b"\x81\xa6action\x04")  # CONNECTED with nothing else: the defaults
    frame = (
        b"\x83\xa6action\x0f\xa7channel\xa1c\xa8messages\x93"
        b"\x82\xa4name\xa1e\xa4data\xa2hi"
        b"\x82\xa4name\xa1x\xa4data\xa2no"
        b"\x82\xa4name\xa1e\xa4data\xc4\x02\x00\x01"
    )
    assert session.receive(frame) == proto.Deliveries(["hi", b"\x00\x01"])


def test_connected_defaults_when_details_are_missing() -> None:
    assert proto.ClientSession("json", "c", "e").receive('{"action":4}') == proto.Connected("", 15000, 120000)
    assert proto.ClientSession("json", "c", "e").receive(
        '{"action":4,"connectionId":"x","connectionDetails":{"maxIdleInterval":400}}'
    ) == proto.Connected("x", 400, 120000)


@pytest.mark.parametrize(
    ("data", "encoding", "decoded", "left"),
    [
        ("aGk=", "base64", b"hi", ""),
        ("aMOp", "utf-8/base64", "h\u00e9", ""),
        ('{"a":1}', "json", {"a": 1}, ""),
        ("eyJhIjpbMV19", "json/utf-8/base64", {"a": [1]}, ""),
        (b'{"a":1}', "json/utf-8", {"a": 1}, ""),
        ("AAAA", "cipher+aes-128-cbc/base64", b"\x00\x00\x00", "cipher+aes-128-cbc"),
        ("not base64!", "base64", "not base64!", "base64"),
        ("x", "vcdiff", "x", "vcdiff"),
        ("plain", "", "plain", ""),
        ("{bad", "json", "{bad", "json"),
        (b"\xff", "utf-8", b"\xff", "utf-8"),
    ],
)
def test_decode_data_undoes_encodings_right_to_left(data: object, encoding: str, decoded: object, left: str) -> None:
    assert proto.decode_data(data, encoding) == (decoded, left)


def test_session_decodes_encoded_messages_and_reports_what_it_cannot() -> None:
    session = proto.ClientSession("json", "c", "e")
    session.receive('{"action":4}')
    delivered = session.receive(
        '{"action":15,"channel":"c","messages":[{"name":"e","data":"AQI=","encoding":"base64"},'
        '{"name":"e","data":"aGk=","encoding":"utf-8/base64"},'
        '{"name":"e","data":"AAAA","encoding":"cipher+aes-128-cbc/base64"}]}'
    )
    assert isinstance(delivered, proto.Deliveries)
    assert delivered.payloads == [b"\x01\x02", "hi"]
    assert delivered.undecodable == (
        "message data with encoding 'cipher+aes-128-cbc/base64': cannot undo 'cipher+aes-128-cbc'",
    )


def test_session_ends_errors_and_detaches() -> None:
    def session() -> proto.ClientSession:
        s = proto.ClientSession("json", "room", "ev")
        s.receive('{"action":4}')
        s.attach()
        s.receive('{"action":11,"channel":"room"}')
        return s

    s = session()
    failed = s.receive('{"action":9,"error":{"message":"Invalid credentials","code":40101,"statusCode":401}}')
    assert failed == proto.Failed(ErrorInfo(40101, 401, "Invalid credentials")) and s.state == "failed"
    assert failed.error.fatal and str(failed.error) == "40101 Invalid credentials"
    s = session()
    channel_failed = s.receive(
        '{"action":9,"channel":"room","error":{"message":"denied","code":40160,"statusCode":401}}'
    )
    assert channel_failed == proto.ChannelFailed("room", ErrorInfo(40160, 401, "denied")) and s.state == "detached"
    assert session().receive('{"action":9,"channel":"other","error":{"code":40160}}') == proto.Ignored(9)
    s = session()
    assert s.receive('{"action":13,"channel":"room","error":{"message":"gone","code":90198,"statusCode":500}}') == (
        proto.Detached("room", ErrorInfo(90198, 500, "gone"))
    )
    assert s.state == "detached"
    assert s.attach() == '{"action":10,"channel":"room"}'  # a detached channel can attach again
    s = session()
    assert s.receive('{"action":6,"error":{"message":"shutting down","code":80003,"statusCode":503}}') == (
        proto.Disconnected(ErrorInfo(80003, 503, "shutting down"))
    )
    assert s.state == "disconnected"
    assert session().receive('{"action":6}') == proto.Disconnected()
    s = session()
    assert s.receive('{"action":8}') == proto.Closed() and s.state == "closed"
    # an ERROR whose error is not an object still ends the connection, with what it said
    assert session().receive('{"action":9,"error":"boom"}') == proto.Failed(ErrorInfo(0, 0, "boom"))
    assert str(ErrorInfo(0, 0, "")) == "no reason given"


@pytest.mark.parametrize(
    ("code", "fatal"),
    [
        (40000, True),
        (40101, True),
        (40400, True),
        (40160, True),
        (40140, False),
        (40142, False),
        (50000, False),
        (80003, False),
        (80008, False),
        (0, False),
    ],
)
def test_which_errors_are_fatal(code: int, fatal: bool) -> None:
    assert ErrorInfo(code, 400, "x").fatal is fatal


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[4]",
        '{"channel":"room"}',
        '{"action":15,"channel":"room","messages":{"name":"ev"}}',
        '{"action":15,"channel":"room"}',
        '{"action":15,"channel":"room","messages":["ev"]}',
    ],
)
def test_session_rejects_frames_that_are_not_protocol_messages(frame: str) -> None:
    session = proto.ClientSession("json", "room", "ev")
    session.receive('{"action":4}')
    with pytest.raises(ProtocolError) as info:
        session.receive(frame)
    assert info.value.error.code == 40000 and str(info.value)


def test_msgpack_session_rejects_text_frames_and_garbage() -> None:
    session = proto.ClientSession("msgpack", "room", "ev")
    for frame in ('{"action":4}', b"\xc1", b"\x81\xa6act"):
        with pytest.raises(ProtocolError):
            session.receive(frame)
