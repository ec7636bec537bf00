"""The sans-I/O codec against literal frames and the documented worked examples.

Golden values come from Pusher's documentation (auth signatures worked example: key
278d425bdf160c739803, secret 7ad3773142a6692b25b8, socket 1234.1234; HTTP API reference example for
POST /apps/3/events) and from the protocol page's frame layouts, never from our own encoder, so a bug
shared by target and client cannot pass.
"""

from __future__ import annotations

import json

import pytest
from pusher.pusher_client import PusherClient

from harness.protocols import pusher as proto
from tests.pusher.helpers import sign_request

DOC_KEY = "278d425bdf160c739803"
DOC_SECRET = "7ad3773142a6692b25b8"
DOC_SOCKET = "1234.1234"
DOC_BODY = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'


# -- signatures (documented worked examples) ------------------------------------------------------


def test_private_channel_auth_matches_the_documented_example() -> None:
    assert proto.channel_auth(DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar") == (
        "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    )


@pytest.mark.parametrize(
    ("channel_data", "signature"),
    [
        (
            '{"user_id":10,"user_info":{"name":"Mr. Channels"}}',
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
        ),
        (
            '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}',  # the older revision of the same page
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
        ),
    ],
)
def test_presence_channel_auth_matches_the_documented_example(channel_data: str, signature: str) -> None:
    assert proto.channel_auth(DOC_KEY, DOC_SECRET, DOC_SOCKET, "presence-foobar", channel_data) == (
        f"{DOC_KEY}:{signature}"
    )


def test_http_api_signature_matches_the_documented_example() -> None:
    assert proto.body_md5(DOC_BODY) == "ec365a775a4cd0599faeb73354201b6f"
    assert proto.request_string_to_sign(
        "POST",
        "/apps/3/events",
        {
            "auth_version": "1.0",
            "body_md5": "ec365a775a4cd0599faeb73354201b6f",
            "auth_key": DOC_KEY,
            "auth_timestamp": "1353088179",
        },
    ) == (
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=ec365a775a4cd0599faeb73354201b6f"
    )
    assert sign_request(DOC_KEY, DOC_SECRET, "POST", "/apps/3/events", DOC_BODY, 1353088179) == {
        "auth_key": DOC_KEY,
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
        "auth_signature": "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
    }


def test_string_to_sign_lowercases_and_sorts_keys_and_leaves_out_the_signature() -> None:
    params = {"info": "user_count", "Filter_By_Prefix": "presence-", "auth_signature": "x", "auth_key": "k"}
    assert proto.request_string_to_sign("get", "/apps/1/channels", params) == (
        "GET\n/apps/1/channels\nauth_key=k&filter_by_prefix=presence-&info=user_count"
    )


def _doc_params(**overrides: str) -> dict[str, str]:
    params = sign_request(DOC_KEY, DOC_SECRET, "POST", "/apps/3/events", DOC_BODY, 1353088179)
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    ("params", "body", "now", "fragment"),
    [
        (_doc_params(), DOC_BODY, 1353088179 + 600, None),
        (_doc_params(), DOC_BODY, 1353088179 - 600, None),
        (_doc_params(), DOC_BODY, 1353088179 + 601, "Timestamp expired"),
        (_doc_params(auth_signature="0" * 64), DOC_BODY, 1353088179, "Invalid signature"),
        (_doc_params(), DOC_BODY + b" ", 1353088179, "body_md5"),
        (_doc_params(auth_key="other"), DOC_BODY, 1353088179, "auth_key"),
        (_doc_params(auth_version="2.0"), DOC_BODY, 1353088179, "auth_version"),
        ({"auth_key": DOC_KEY}, DOC_BODY, 1353088179, "Missing auth_timestamp"),
        ({}, DOC_BODY, 1353088179, "Missing auth_key"),
    ],
)
def test_verify_request(params: dict[str, str], body: bytes, now: float, fragment: str | None) -> None:
    reason = proto.verify_request(DOC_KEY, DOC_SECRET, "POST", "/apps/3/events", params, body, now)
    if fragment is None:
        assert reason is None
    else:
        assert reason is not None and fragment in reason
        assert DOC_SECRET not in reason


def test_verify_channel_auth() -> None:
    good = f"{DOC_KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    assert proto.verify_channel_auth(good, DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar") is None
    assert "Invalid signature" in str(
        proto.verify_channel_auth(good, DOC_KEY, DOC_SECRET, "1234.1235", "private-foobar")
    )
    assert "Invalid key" in str(
        proto.verify_channel_auth("k:" + good.split(":")[1], DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar")
    )
    assert proto.verify_channel_auth(None, DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar") is not None
    assert proto.verify_channel_auth("nocolon", DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar") is not None


def test_the_official_sdk_agrees_with_the_codec() -> None:
    """The SDK signs; our verifier accepts. The SDK authorizes channels; our codec computes the same."""
    client = PusherClient("3", DOC_KEY, DOC_SECRET, host="127.0.0.1", port=6001, ssl=False)
    request = client.trigger.make_request(["project-3"], "foo", '{"some":"data"}')
    now = float(request.query_params["auth_timestamp"])
    assert (
        proto.verify_request(DOC_KEY, DOC_SECRET, "POST", request.path, request.query_params, request.body, now) is None
    )
    tampered = dict(request.query_params, auth_timestamp=str(int(now) + 1))
    assert proto.verify_request(DOC_KEY, DOC_SECRET, "POST", request.path, tampered, request.body, now) is not None
    import pusher

    sdk = pusher.Pusher("3", DOC_KEY, DOC_SECRET)
    assert sdk.authenticate("private-foobar", DOC_SOCKET)["auth"] == proto.channel_auth(
        DOC_KEY, DOC_SECRET, DOC_SOCKET, "private-foobar"
    )
    presence = sdk.authenticate("presence-foobar", DOC_SOCKET, {"user_id": "7", "user_info": {"n": 1}})
    assert presence["auth"] == proto.channel_auth(
        DOC_KEY, DOC_SECRET, DOC_SOCKET, "presence-foobar", presence["channel_data"]
    )


# -- frames: literal bytes in, literal frames out -------------------------------------------------

CONNECTION_ESTABLISHED = (
    '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"123.456\\",\\"activity_timeout\\":120}"}'
)


def test_connection_established_is_a_json_string_inside_json() -> None:
    assert proto.connection_established("123.456", 120) == CONNECTION_ESTABLISHED
    frame = proto.decode(CONNECTION_ESTABLISHED)
    assert frame == proto.Frame("pusher:connection_established", '{"socket_id":"123.456","activity_timeout":120}')
    assert proto.data_object(frame.data) == {"socket_id": "123.456", "activity_timeout": 120}


def test_server_frames() -> None:
    assert proto.error("Could not find app by key nope", 4001) == (
        '{"event":"pusher:error","data":{"code":4001,"message":"Could not find app by key nope"}}'
    )
    assert proto.error("Invalid JSON") == '{"event":"pusher:error","data":{"code":null,"message":"Invalid JSON"}}'
    assert proto.pong() == '{"event":"pusher:pong","data":"{}"}'
    assert proto.ping() == '{"event":"pusher:ping","data":"{}"}'
    assert proto.subscription_succeeded("my-channel") == (
        '{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}'
    )
    assert proto.subscription_succeeded("presence-x", {"10": {"name": "Mr. Channels"}}) == (
        '{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":'
        '"{\\"presence\\":{\\"ids\\":[\\"10\\"],\\"hash\\":{\\"10\\":{\\"name\\":\\"Mr. Channels\\"}},\\"count\\":1}}"}'
    )
    assert proto.member_added("presence-x", "11", {"name": "B"}) == (
        '{"event":"pusher_internal:member_added","channel":"presence-x","data":'
        '"{\\"user_id\\":\\"11\\",\\"user_info\\":{\\"name\\":\\"B\\"}}"}'
    )
    assert proto.member_removed("presence-x", "11") == (
        '{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\\"user_id\\":\\"11\\"}"}'
    )
    assert proto.subscription_error("private-x", "nope") == (
        '{"event":"pusher:subscription_error","channel":"private-x","data":'
        '"{\\"type\\":\\"AuthError\\",\\"error\\":\\"nope\\",\\"status\\":401}"}'
    )
    assert proto.channel_event("my-channel", "my-event", "rtb1|x") == (
        '{"event":"my-event","channel":"my-channel","data":"rtb1|x"}'
    )
    assert proto.channel_event("presence-x", "client-typing", '{"a":1}', "11") == (
        '{"event":"client-typing","channel":"presence-x","data":"{\\"a\\":1}","user_id":"11"}'
    )


def test_client_frames() -> None:
    assert proto.subscribe("my-channel") == '{"event":"pusher:subscribe","data":{"channel":"my-channel"}}'
    auth = f"{DOC_KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    assert proto.subscribe("private-foobar", auth) == (
        '{"event":"pusher:subscribe","data":{"channel":"private-foobar","auth":"' + auth + '"}}'
    )
    assert json.loads(proto.subscribe("presence-x", "k:s", '{"user_id":"1"}')) == {
        "event": "pusher:subscribe",
        "data": {"channel": "presence-x", "auth": "k:s", "channel_data": '{"user_id":"1"}'},
    }
    assert proto.unsubscribe("my-channel") == '{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}'
    assert proto.client_ping() == '{"event":"pusher:ping","data":{}}'
    assert proto.client_pong() == '{"event":"pusher:pong","data":{}}'


def test_a_client_event_is_an_event_frame_whose_name_says_client() -> None:
    assert proto.client_event("private-x", "client-rtbench", "probe") == (
        '{"event":"client-rtbench","channel":"private-x","data":"probe"}'
    )
    with pytest.raises(ValueError, match="starts with 'client-'"):
        proto.client_event("private-x", "rtbench", "probe")


def test_a_triggered_event_keeps_its_string_data_untouched() -> None:
    frame = proto.decode('{"event":"rtbench","channel":"rtbench-0","data":"{\\"not\\":\\"decoded\\"}"}')
    assert frame == proto.Frame("rtbench", '{"not":"decoded"}', "rtbench-0")
    frame = proto.decode('{"event":"client-x","channel":"presence-a","data":{"a":1},"user_id":7}')
    assert frame.data == {"a": 1} and frame.user_id == "7"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "Invalid JSON"),
        ("[1,2]", "JSON object"),
        ('{"data":{}}', "event"),
        ('{"event":""}', "event"),
        ('{"event":3}', "event"),
        ('{"event":"x","channel":5}', "channel"),
        (b"\xff\xfe", "Invalid JSON"),
    ],
)
def test_malformed_frames_raise_protocol_error(text: str | bytes, fragment: str) -> None:
    with pytest.raises(proto.ProtocolError, match=fragment):
        proto.decode(text)


def test_data_object_accepts_objects_and_json_strings_only() -> None:
    assert proto.data_object({"channel": "a"}) == {"channel": "a"}
    assert proto.data_object('{"channel":"a"}') == {"channel": "a"}
    for bad in (None, "[]", "x", 3):
        with pytest.raises(proto.ProtocolError):
            proto.data_object(bad)


# -- channel rules and close codes ---------------------------------------------------------------


def test_channel_kinds_and_names() -> None:
    assert [proto.channel_kind(n) for n in ("todos", "private-a", "presence-a", "private-encrypted-a")] == [
        "public",
        "private",
        "presence",
        "encrypted",
    ]
    assert proto.validate_channel("azAZ09_-=@,.;") == "azAZ09_-=@,.;"
    for bad in ("", "has space", "a/b", "x" * 201, None, 5):
        with pytest.raises(proto.ProtocolError):
            proto.validate_channel(bad)


def test_parse_channel_data() -> None:
    assert proto.parse_channel_data('{"user_id":10,"user_info":{"name":"Mr. Channels"}}') == (
        "10",
        {"name": "Mr. Channels"},
    )
    assert proto.parse_channel_data('{"user_id":"u"}') == ("u", None)
    for bad in (None, "{}", '{"user_id":""}', '{"user_id":true}', "nope"):
        with pytest.raises(proto.ProtocolError):
            proto.parse_channel_data(bad)


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (None, None),
        (1000, None),
        (1001, None),
        (1006, None),
        (1002, "backoff"),
        (4000, "tls_only"),
        (4001, "refused"),
        (4009, "refused"),
        (4100, "backoff"),
        (4200, "retry"),
        (4201, "retry"),
        (4301, "refused"),
    ],
)
def test_close_actions_follow_the_protocol(code: int | None, action: str | None) -> None:
    assert proto.close_action(code) == action


# -- the client's connection state machine: literal frames in, events and literal frames out ---------


def feed(client: proto.ClientConnection, text: str) -> proto.ClientEvent | None:
    return client.receive(proto.decode(text))


def state(client: proto.ClientConnection) -> proto.ClientState:
    return client.state


def test_a_public_subscription_from_handshake_to_deliveries() -> None:
    client = proto.ClientConnection("my-channel")
    assert state(client) is proto.ClientState.CONNECTING and client.data_to_send() == []
    assert feed(client, CONNECTION_ESTABLISHED) == proto.Established("123.456", 120.0)
    assert client.socket_id == "123.456" and state(client) is proto.ClientState.SUBSCRIBING
    assert client.data_to_send() == ['{"event":"pusher:subscribe","data":{"channel":"my-channel"}}']
    assert client.data_to_send() == []  # each frame is sent once
    # an event before the subscription is confirmed is not ours yet
    assert feed(client, '{"event":"my-event","channel":"my-channel","data":"early"}') is None
    assert feed(client, '{"event":"pusher_internal:subscription_succeeded","channel":"other","data":"{}"}') is None
    assert feed(client, '{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}') == (
        proto.Subscribed("my-channel")
    )
    assert state(client) is proto.ClientState.SUBSCRIBED
    assert feed(client, '{"event":"my-event","channel":"my-channel","data":"rtb1|x"}') == proto.ChannelEvent(
        "my-channel", "my-event", "rtb1|x", None
    )
    assert feed(client, '{"event":"client-typing","channel":"my-channel","data":{"a":1},"user_id":"7"}') == (
        proto.ChannelEvent("my-channel", "client-typing", {"a": 1}, "7")
    )
    assert feed(client, '{"event":"my-event","channel":"not-mine","data":"x"}') is None
    assert feed(client, '{"event":"pusher:pong","data":"{}"}') is None
    assert client.data_to_send() == []
    assert client.unsubscribe() == '{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}'
    assert client.ping() == '{"event":"pusher:ping","data":{}}'


def test_server_pings_are_answered_in_every_state() -> None:
    client = proto.ClientConnection("my-channel")
    assert feed(client, '{"event":"pusher:ping","data":"{}"}') is None
    assert client.data_to_send() == ['{"event":"pusher:pong","data":{}}']
    feed(client, CONNECTION_ESTABLISHED)
    client.data_to_send()
    feed(client, '{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}')
    assert feed(client, '{"event":"pusher:ping","data":"{}"}') is None
    assert client.data_to_send() == ['{"event":"pusher:pong","data":{}}']


def test_private_auth_is_the_documented_signature() -> None:
    client = proto.ClientConnection("private-foobar", key=DOC_KEY, secret=DOC_SECRET)
    feed(
        client,
        '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1234.1234\\",'
        '\\"activity_timeout\\":120}"}',
    )
    assert client.data_to_send() == [
        '{"event":"pusher:subscribe","data":{"channel":"private-foobar","auth":"278d425bdf160c739803:'
        '58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}}'
    ]


def test_presence_auth_and_channel_data_are_the_documented_ones() -> None:
    client = proto.ClientConnection(
        "presence-foobar", key=DOC_KEY, secret=DOC_SECRET, user_id=10, user_info={"name": "Mr. Channels"}
    )
    feed(
        client,
        '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1234.1234\\",'
        '\\"activity_timeout\\":120}"}',
    )
    assert json.loads(client.data_to_send()[0]) == {
        "event": "pusher:subscribe",
        "data": {
            "channel": "presence-foobar",
            "auth": "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
            "channel_data": '{"user_id":10,"user_info":{"name":"Mr. Channels"}}',
        },
    }


@pytest.mark.parametrize(("announced", "kept"), [(120, 120.0), (300, 120.0), (1, 1.0), (0.5, 0.5)])
def test_the_activity_timeout_is_the_servers_capped_at_the_clients(announced: float, kept: float) -> None:
    client = proto.ClientConnection("c")
    event = feed(client, proto.connection_established("1.2", announced))  # type: ignore[arg-type]
    assert event == proto.Established("1.2", kept) and client.activity_timeout == kept


def test_refusals_and_errors() -> None:
    client = proto.ClientConnection("c")
    error = feed(client, '{"event":"pusher:error","data":{"code":4001,"message":"Could not find app by key nope"}}')
    assert error == proto.ServerError("Could not find app by key nope", 4001)
    assert isinstance(error, proto.ServerError) and error.action == "refused"
    assert feed(client, '{"event":"pusher:error","data":{"code":4100,"message":"Over capacity"}}') == (
        proto.ServerError("Over capacity", 4100)
    )
    assert feed(client, '{"event":"pusher:error","data":"not an object"}') == proto.ServerError("not an object", None)
    private = proto.ClientConnection("private-x", key="k", secret="s")
    feed(private, CONNECTION_ESTABLISHED)
    refused = feed(
        private,
        '{"event":"pusher:subscription_error","channel":"private-x","data":'
        '"{\\"type\\":\\"AuthError\\",\\"error\\":\\"nope\\",\\"status\\":401}"}',
    )
    assert refused == proto.SubscriptionRefused("private-x", "nope", 401)
    assert private.state is proto.ClientState.FAILED
    # once subscribed, a pusher:error with a null code is reported and the connection stays
    live = proto.ClientConnection("c")
    feed(live, CONNECTION_ESTABLISHED)
    feed(live, '{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}"}')
    assert feed(live, '{"event":"pusher:error","data":{"code":null,"message":"Invalid JSON"}}') == (
        proto.ServerError("Invalid JSON", None)
    )
    assert live.state is proto.ClientState.SUBSCRIBED
    assert feed(live, '{"event":"pusher_internal:member_added","channel":"c","data":"{\\"user_id\\":\\"2\\"}"}') is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"event":"rtbench","channel":"c","data":"x"}', "expected pusher:connection_established, got rtbench"),
        (
            '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"abc\\",\\"activity_timeout\\":1}"}',
            "invalid socket_id 'abc'",
        ),
        ('{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.2\\"}"}', "activity_timeout None"),
        (
            '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.2\\",\\"activity_timeout\\":0}"}',
            "activity_timeout 0",
        ),
        (
            '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.2\\",\\"activity_timeout\\":true}"}',
            "activity_timeout True",
        ),
        ('{"event":"pusher:connection_established","data":"nope"}', "not valid JSON"),
    ],
)
def test_a_broken_handshake_raises_protocol_error(text: str, fragment: str) -> None:
    client = proto.ClientConnection("c")
    with pytest.raises(proto.ProtocolError, match=fragment):
        feed(client, text)
    assert client.state is proto.ClientState.FAILED and client.data_to_send() == []


def test_channels_the_client_cannot_sign_are_refused_up_front() -> None:
    for channel, kwargs in [
        ("private-x", {}),
        ("presence-x", {"key": "k", "secret": "s"}),
        ("private-encrypted-x", {"key": "k", "secret": "s"}),
    ]:
        with pytest.raises(ValueError, match=r"private|presence|encrypted"):
            proto.ClientConnection(channel, **kwargs)  # type: ignore[arg-type]


# -- the plain-frame shortcut: exactly what decode + receive would give, or None ------------------

PLAIN_FRAMES = [
    ('{"event":"rtbench","channel":"rtbench-0","data":"rtb1|r|p|1|2|xx"}', "rtb1|r|p|1|2|xx"),  # our target
    ('{"event":"rtbench","data":"rtb1|r|p|1|2|xx","channel":"rtbench-0"}', "rtb1|r|p|1|2|xx"),  # Pusher's order
    ('{"event":"rtbench","channel":"rtbench-0","data":""}', ""),
    ('{"event":"rtbench","channel":"rtbench-0","data":"h\u00e9llo \u2603"}', "h\u00e9llo \u2603"),
    ('{"event":"rtbench","channel":"rtbench-0","data":"{\\"a\\":1}"}', '{"a":1}'),  # escapes: an app's JSON
    ('{"event":"rtbench","data":"\\u00e9\\n","channel":"rtbench-0"}', "\u00e9\n"),
    ('{"event":"rtbench","channel":"rtbench-0","data":"a\u2028b"}', "a\u2028b"),
    # everything below takes the general path
    ('{"event":"rtbench","channel":"rtbench-0","data":"x","user_id":"7"}', None),  # another key after data
    ('{"event":"rtbench","data":"x","channel":"rtbench-0","user_id":"7"}', None),
    ('{"event":"rtbench","channel":"rtbench-1","data":"x"}', None),  # another channel
    ('{"event":"rtbench","channel":"rtbench-00","data":"x"}', None),
    ('{"event":"rtbench2","channel":"rtbench-0","data":"x"}', None),  # another event
    ('{"event":"rtbench", "channel":"rtbench-0", "data":"x"}', None),  # spaces
    ('{"event":"rtbench","channel":"rtbench-0","data":{"a":1}}', None),  # data is an object
    ('{"event":"rtbench","channel":"rtbench-0","data":"a\u0001b"}', None),  # not valid JSON: decode says so
    ('{"event":"rtbench","channel":"rtbench-0","data":"a\\qb"}', None),  # a bad escape, likewise
    ('{"event":"rtbench","channel":"rtbench-0","data":"a"b"}', None),
    ('{"event":"rtbench","data":"x","event":"e2","channel":"rtbench-0"}', None),  # a second key
    ('{"event":"rtbench","channel":"rtbench-0","data":"x"} ', None),
    ('{"event":"rtbench","channel":"rtbench-0","data":"x', None),  # truncated
]


@pytest.mark.parametrize(("text", "data"), PLAIN_FRAMES)
def test_plain_event_matcher(text: str, data: str | None) -> None:
    match = proto.PlainEventMatcher("rtbench-0", "rtbench")
    assert match(text) == data
    if data is not None:  # the shortcut agrees with the general path
        client = proto.ClientConnection("rtbench-0")
        feed(client, CONNECTION_ESTABLISHED)
        feed(client, '{"event":"pusher_internal:subscription_succeeded","channel":"rtbench-0","data":"{}"}')
        assert feed(client, text) == proto.ChannelEvent("rtbench-0", "rtbench", data, None)


def test_plain_event_matcher_encodes_names_as_json() -> None:
    match = proto.PlainEventMatcher("c", 'say "hi"')
    assert match('{"event":"say \\"hi\\"","channel":"c","data":"x"}') == "x"
