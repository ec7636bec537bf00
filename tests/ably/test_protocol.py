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
CLIENT_MESSAGE_MSGPACK = (b"\x84\xa6action\x0f\xa7channel\xa1c\xa9msgSerial\x00"
                          b"\xa8messages\x91\x82\xa4name\xa1e\xa4data\xa2hi")


def test_server_frames_in_msgpack() -> None:
    assert proto.encode(proto.heartbeat(), "msgpack") == HEARTBEAT_MSGPACK
    assert proto.encode(proto.ack(5, 2), "msgpack") == ACK_MSGPACK
    assert proto.encode({"action": 15, "messages": [{"data": b"\x00\x01"}]}, "msgpack") == (
        b"\x82\xa6action\x0f\xa8messages\x91\x81\xa4data\xc4\x02\x00\x01")  # bin 8, not str


def test_server_frames_in_json_are_whitespace_free() -> None:
    assert proto.encode(proto.heartbeat("ping-1"), "json") == b'{"action":0,"id":"ping-1"}'
    assert proto.encode(proto.nack(3, 1, ErrorInfo(40009, 400, "too big")), "json") == (
        b'{"action":2,"msgSerial":3,"count":1,"error":{"message":"too big","code":40009,"statusCode":400,'
        b'"href":"https://help.ably.io/error/40009"}}')
    assert proto.encode(proto.error(ErrorInfo.invalid_credentials()), "json") == (
        b'{"action":9,"error":{"message":"Invalid credentials","code":40101,"statusCode":401,'
        b'"href":"https://help.ably.io/error/40101"}}')
    assert proto.encode(proto.attached("room", Flag.RESUMED | Flag.PUBLISH), "json") == (
        b'{"action":11,"channel":"room","flags":131076}')
    assert proto.encode(proto.detached("room"), "json") == b'{"action":13,"channel":"room"}'
    assert proto.encode(proto.closed(), "json") == b'{"action":8}'


def test_connected_carries_complete_connection_details() -> None:
    details = proto.ConnectionDetails(connection_key="abc!xyz", server_id="srv", client_id="ann")
    assert proto.encode(proto.connected("abc", details), "json") == (
        b'{"action":4,"connectionId":"abc","connectionKey":"abc!xyz","connectionDetails":{'
        b'"connectionKey":"abc!xyz","maxMessageSize":65536,"maxInboundRate":250,"maxOutboundRate":250,'
        b'"maxFrameSize":524288,"serverId":"srv","connectionStateTtl":120000,"maxIdleInterval":15000,'
        b'"clientId":"ann"}}')


def test_channel_message_from_the_service() -> None:
    frame = proto.channel_message("c", [{"id": "x:0:0", "name": "e", "data": "hi", "timestamp": 7,
                                         "connectionId": "x"}], message_id="x:0", timestamp=7, connection_id="x")
    assert proto.encode(frame, "json") == (
        b'{"action":15,"id":"x:0","channel":"c","timestamp":7,"messages":[{"id":"x:0:0","name":"e",'
        b'"data":"hi","timestamp":7,"connectionId":"x"}],"connectionId":"x"}')


def test_decode_client_frames() -> None:
    assert proto.decode(CLIENT_MESSAGE_MSGPACK, "msgpack") == {
        "action": 15, "channel": "c", "msgSerial": 0, "messages": [{"name": "e", "data": "hi"}]}
    assert proto.decode('{"action":10,"channel":"c","flags":32}', "json") == {"action": 10, "channel": "c",
                                                                               "flags": 32}
    assert proto.decode(b'{"action":0,"id":"p"}', "json") == {"action": 0, "id": "p"}


@pytest.mark.parametrize(("frame", "fmt"), [
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
])
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
    assert (python.fmt, python.version, python.key, python.echo, python.heartbeats) == ("msgpack", "5", "a.b:c",
                                                                                        True, True)
    js = proto.parse_connect_params({"key": "a.b:c", "echo": "false", "format": "json", "heartbeats": "false",
                                     "v": "6", "agent": "ably-js/2.28.0", "clientId": "me"})
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

    request = TokenRequest(key_name="app.key", client_id="me", nonce="0123456789abcdef", ttl=60000,
                           capability='{"*":["*"]}', timestamp=1700000000000)
    request.sign_request(b"secret")
    assert proto.token_request_mac("secret", key_name="app.key", ttl=60000, capability='{"*":["*"]}',
                                   client_id="me", timestamp=1700000000000, nonce="0123456789abcdef") == request.mac
    request = TokenRequest(key_name="app.key", nonce="n" * 16, timestamp=5)
    request.sign_request(b"secret")
    assert proto.token_request_mac("secret", key_name="app.key", ttl=None, capability=None, client_id=None,
                                   timestamp=5, nonce="n" * 16) == request.mac
