"""RFC 6455 client codec: golden bytes from the RFC in, literal events out; violations carry their close codes."""

from __future__ import annotations

import pytest

from harness.protocols import websocket as ws
from harness.protocols.websocket import Close, Event, FrameParser, HandshakeError, Message, Ping, Pong, ProtocolError

# RFC 6455 section 5.7 examples
HELLO = bytes.fromhex("810548656c6c6f")  # a single-frame unmasked text message "Hello"
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")  # the same, masked with 37 fa 21 3d
HEL_LO = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")  # a fragmented unmasked text message
PING_HELLO = bytes.fromhex("890548656c6c6f")  # unmasked ping, body "Hello"
PONG_HELLO_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")  # masked pong, body "Hello"
MASK = bytes.fromhex("37fa213d")

# RFC 6455 sections 1.2, 1.3 and 4.2.2
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # SHA-1 b37a4f2c...b2bec4ea, base64
RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def feed_all(parser: FrameParser, *chunks: bytes) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def violation(*chunks: bytes, max_message: int = ws.DEFAULT_MAX_MESSAGE) -> ProtocolError:
    parser = FrameParser(max_message)
    with pytest.raises(ProtocolError) as info:
        feed_all(parser, *chunks)
    return info.value


# -- opening handshake ---------------------------------------------------------------------------
def test_accept_for_the_rfc_key() -> None:
    assert ws.accept_for(RFC_KEY) == RFC_ACCEPT


def test_handshake_request_is_the_rfc_example() -> None:
    assert ws.handshake_request("server.example.com", "/chat", RFC_KEY) == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def test_handshake_request_carries_extra_headers() -> None:
    request = ws.handshake_request("h:8080", "/app?protocol=7", RFC_KEY, {"Origin": "http://h"})
    assert request.startswith(b"GET /app?protocol=7 HTTP/1.1\r\nHost: h:8080\r\n")
    assert request.endswith(b"Sec-WebSocket-Version: 13\r\nOrigin: http://h\r\n\r\n")


def test_new_keys_are_16_random_bytes() -> None:
    keys = {ws.new_key() for _ in range(4)}
    assert len(keys) == 4
    assert all(len(key) == 24 and key.endswith("==") for key in keys)


def test_rfc_response_is_accepted_and_the_frames_after_it_are_kept() -> None:
    headers, length = ws.parse_handshake_response(RFC_RESPONSE + HELLO, RFC_KEY) or ({}, 0)
    assert length == len(RFC_RESPONSE)
    assert headers == {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-accept": RFC_ACCEPT}
    assert FrameParser().feed((RFC_RESPONSE + HELLO)[length:]) == [Message("Hello")]


def test_response_head_arriving_bytewise_completes_only_at_its_end() -> None:
    for end in range(len(RFC_RESPONSE)):
        assert ws.parse_handshake_response(RFC_RESPONSE[:end], RFC_KEY) is None
    assert ws.parse_handshake_response(RFC_RESPONSE, RFC_KEY) is not None


def test_header_names_and_upgrade_tokens_are_case_insensitive() -> None:
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert ws.parse_handshake_response(response, RFC_KEY) is not None


def refusal(response: bytes, key: str = RFC_KEY) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        ws.parse_handshake_response(response, key)
    return info.value


def test_non_101_is_refused_with_its_status() -> None:
    error = refusal(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert error.status == 404
    assert str(error) == "server answered HTTP 404 Not Found"


def test_200_without_a_reason_phrase() -> None:
    error = refusal(b"HTTP/1.1 200\r\n\r\n")
    assert (error.status, str(error)) == (200, "server answered HTTP 200")


def test_wrong_accept_is_refused() -> None:
    error = refusal(RFC_RESPONSE, key="x3JJHMbDL1EzLkh9GBhXDw==")
    assert error.status == 101
    assert "Sec-WebSocket-Accept" in str(error)


def test_missing_upgrade_header_is_refused() -> None:
    error = refusal(RFC_RESPONSE.replace(b"Upgrade: websocket\r\n", b""))
    assert str(error) == "101 response without Upgrade: websocket"


def test_missing_connection_upgrade_is_refused() -> None:
    error = refusal(RFC_RESPONSE.replace(b"Connection: Upgrade", b"Connection: keep-alive"))
    assert str(error) == "101 response without Connection: Upgrade"


def test_an_extension_we_did_not_offer_is_refused() -> None:
    error = refusal(RFC_RESPONSE[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    assert error.status == 101
    assert "permessage-deflate" in str(error)


def test_not_http_is_refused() -> None:
    error = refusal(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert error.status is None
    assert str(error).startswith("not an HTTP response")


def test_malformed_header_line_is_refused() -> None:
    assert "malformed header" in str(refusal(b"HTTP/1.1 101 Switching Protocols\r\nnonsense\r\n\r\n"))


def test_oversized_head_is_refused_before_it_ends() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: " + b"a" * ws.MAX_HEAD
    assert "exceeds" in str(refusal(head))


def test_oversized_head_is_refused_when_it_arrives_whole() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: " + b"a" * ws.MAX_HEAD + b"\r\n\r\n"
    assert "exceeds" in str(refusal(head))


def test_head_just_under_the_limit_is_fine() -> None:
    padding = b"X-Pad: " + b"a" * (ws.MAX_HEAD - len(RFC_RESPONSE) - len(b"X-Pad: \r\n")) + b"\r\n"
    response = RFC_RESPONSE[:-2] + padding + b"\r\n"
    assert len(response) == ws.MAX_HEAD
    assert ws.parse_handshake_response(response, RFC_KEY) is not None


# -- client frames ------------------------------------------------------------------------------
def test_masked_hello_is_the_rfc_example() -> None:
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", MASK) == HELLO_MASKED


def test_masked_pong_is_the_rfc_example() -> None:
    assert ws.encode_frame(ws.OP_PONG, b"Hello", MASK) == PONG_HELLO_MASKED


@pytest.mark.parametrize(
    ("size", "header"), [(125, "fd"), (126, "fe007e"), (65535, "feffff"), (65536, "ff0000000000010000")]
)
def test_client_frame_length_encodings(size: int, header: str) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = ws.encode_frame(ws.OP_BINARY, payload, MASK)
    assert frame[:1] == b"\x82"
    assert frame[1 : 1 + len(header) // 2] == bytes.fromhex(header)
    assert frame[1 + len(header) // 2 :][:4] == MASK
    assert ws.apply_mask(frame[5 + len(header) // 2 :], MASK) == payload


def test_mask_is_xor_with_the_repeating_key() -> None:
    assert ws.apply_mask(b"\x00\x00\x00\x00\x00\x00", b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04\x01\x02"
    assert ws.apply_mask(b"\x00Hello", MASK) == bytes(b ^ MASK[i % 4] for i, b in enumerate(b"\x00Hello"))
    assert ws.apply_mask(b"", MASK) == b""


def test_every_client_frame_is_masked_with_a_fresh_key() -> None:
    one, two = ws.text("Hello"), ws.text("Hello")
    assert one[0] == 0x81 and one[1] == 0x85 and two[1] == 0x85
    assert one[2:6] != two[2:6]
    assert ws.apply_mask(one[6:], one[2:6]) == b"Hello"


def test_helpers_choose_their_opcodes() -> None:
    assert [frame[0] for frame in (ws.text("a"), ws.binary(b"a"), ws.ping(b"a"), ws.pong(b"a"), ws.close())] == [
        0x81,
        0x82,
        0x89,
        0x8A,
        0x88,
    ]


def test_close_frame_body_is_code_and_reason() -> None:
    frame = ws.close(1001, "bye")
    assert frame[1] == 0x80 | 5
    assert ws.apply_mask(frame[6:], frame[2:6]) == b"\x03\xe9bye"


def test_close_reason_is_cut_on_a_utf8_boundary() -> None:
    frame = ws.close(1002, "é" * 100)  # 200 bytes of UTF-8: 123 would split a character
    body = ws.apply_mask(frame[6:], frame[2:6])
    assert len(frame) - 6 == len(body) == 2 + 122
    assert body[2:].decode("utf-8") == "é" * 61


# -- server frames: RFC examples -------------------------------------------------------------------
def test_unmasked_hello() -> None:
    parser = FrameParser()
    assert parser.feed(HELLO) == [Message("Hello")]


def test_fragmented_hel_lo() -> None:
    assert FrameParser().feed(HEL_LO) == [Message("Hello")]


def test_ping_hello() -> None:
    assert FrameParser().feed(PING_HELLO) == [Ping(b"Hello")]


def test_unmasked_pong() -> None:
    assert FrameParser().feed(bytes.fromhex("8a0548656c6c6f")) == [Pong(b"Hello")]


def test_256_byte_binary_message() -> None:
    payload = bytes(range(256))
    frame = bytes.fromhex("827e0100") + payload
    parser = FrameParser()
    assert parser.feed(frame) == [Message(payload)]


def test_64_kib_binary_message() -> None:
    payload = bytes(range(256)) * 256
    frame = bytes.fromhex("827f0000000000010000") + payload
    parser = FrameParser()
    assert parser.feed(frame) == [Message(payload)]


def test_empty_text_message() -> None:
    assert FrameParser().feed(b"\x81\x00") == [Message("")]


def test_utf8_text_message() -> None:
    assert FrameParser().feed(b"\x81\x06" + "héllo".encode()) == [Message("héllo")]


def test_fragmented_binary_message_with_an_empty_first_fragment() -> None:
    assert FrameParser().feed(b"\x02\x00" + b"\x00\x02ab" + b"\x80\x01c") == [Message(b"abc")]


def test_several_frames_in_one_read() -> None:
    assert FrameParser().feed(HELLO + PING_HELLO + HELLO) == [Message("Hello"), Ping(b"Hello"), Message("Hello")]


def test_close_frames() -> None:
    assert FrameParser().feed(b"\x88\x00") == [Close(ws.NO_STATUS, "")]
    assert FrameParser().feed(b"\x88\x02\x03\xe8") == [Close(1000, "")]
    assert FrameParser().feed(b"\x88\x05\x03\xe9bye") == [Close(1001, "bye")]
    assert FrameParser().feed(b"\x88\x02\x0f\xa0") == [Close(4000, "")]  # application range


def test_nothing_after_a_close_frame() -> None:
    parser = FrameParser()
    assert parser.feed(b"\x88\x02\x03\xe8" + HELLO) == [Close(1000, "")]
    assert parser.closed
    assert parser.feed(HELLO) == []


def test_control_frames_interleaved_in_a_fragmented_message() -> None:
    stream = (
        b"\x01\x03Hel"
        + PING_HELLO
        + b"\x00\x01l"
        + b"\x8a\x00"  # empty pong
        + b"\x80\x01o"
        + HELLO
    )
    assert FrameParser().feed(stream) == [Ping(b"Hello"), Pong(b""), Message("Hello"), Message("Hello")]


def test_fragmented_text_may_split_a_utf8_character() -> None:
    encoded = "é".encode()
    assert FrameParser().feed(b"\x01\x01" + encoded[:1] + b"\x80\x01" + encoded[1:]) == [Message("é")]


# -- every byte boundary ---------------------------------------------------------------------------------
SEQUENCES: dict[str, tuple[bytes, list[Event]]] = {
    "rfc examples": (
        HELLO + HEL_LO + PING_HELLO + bytes.fromhex("827e0100") + bytes(256),
        [Message("Hello"), Message("Hello"), Ping(b"Hello"), Message(bytes(256))],
    ),
    "interleaved control": (
        b"\x01\x03Hel" + PING_HELLO + b"\x80\x02lo" + b"\x88\x05\x03\xe9bye",
        [Ping(b"Hello"), Message("Hello"), Close(1001, "bye")],
    ),
    "utf8 and binary": (
        b"\x81\x06" + "héllo".encode() + b"\x02\x01\x00" + b"\x80\x02\x01\x02" + b"\x81\x00",
        [Message("héllo"), Message(b"\x00\x01\x02"), Message("")],
    ),
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_every_split_in_two_gives_the_same_events(name: str) -> None:
    stream, expected = SEQUENCES[name]
    for cut in range(len(stream) + 1):
        assert feed_all(FrameParser(), stream[:cut], stream[cut:]) == expected, cut


@pytest.mark.parametrize("name", SEQUENCES)
def test_byte_by_byte_gives_the_same_events(name: str) -> None:
    stream, expected = SEQUENCES[name]
    assert feed_all(FrameParser(), *(stream[i : i + 1] for i in range(len(stream)))) == expected


def test_every_split_in_three_of_the_rfc_frames() -> None:
    stream = HELLO + HEL_LO + PING_HELLO
    expected = [Message("Hello"), Message("Hello"), Ping(b"Hello")]
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            parts = stream[:first], stream[first:second], stream[second:]
            assert feed_all(FrameParser(), *parts) == expected, (first, second)


# -- protocol errors and their close codes --------------------------------------------------------------
def test_masked_server_frame() -> None:
    error = violation(HELLO_MASKED)
    assert (error.code, str(error)) == (1002, "server frame is masked")


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_reserved_bits(rsv: int) -> None:
    error = violation(bytes([0x81 | rsv, 0x05]) + b"Hello")
    assert error.code == 1002
    assert "reserved bits" in str(error)


def test_fragmented_control_frame() -> None:
    error = violation(b"\x09\x00")  # ping without FIN
    assert error.code == 1002
    assert "control frame" in str(error)


def test_control_frame_longer_than_125_bytes() -> None:
    error = violation(b"\x89\x7e\x00\x7e")  # a 126-byte ping: judged from its header alone
    assert error.code == 1002
    assert "longer than 125" in str(error)


def test_continuation_with_nothing_to_continue() -> None:
    error = violation(b"\x80\x02lo")
    assert (error.code, str(error)) == (1002, "continuation frame with nothing to continue")


@pytest.mark.parametrize("opcode", [ws.OP_TEXT, ws.OP_BINARY])
def test_new_data_frame_mid_fragment(opcode: int) -> None:
    error = violation(b"\x01\x03Hel", bytes([0x80 | opcode, 0x01]) + b"x")
    assert (error.code, str(error)) == (1002, "new data frame before the fragmented message ended")


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_unknown_opcodes(opcode: int) -> None:
    error = violation(bytes([0x80 | opcode, 0x7E, 0xFF, 0xFF]))  # rejected before its payload arrives
    assert (error.code, str(error)) == (1002, f"unknown opcode {opcode:#x}")


def test_bad_utf8_text_is_1007() -> None:
    assert violation(b"\x81\x02\xc3\x28").code == 1007


def test_bad_utf8_in_a_fragmented_text_is_1007() -> None:
    assert violation(b"\x01\x01\xc3", b"\x80\x01\x28").code == 1007


def test_too_big_is_1009_before_the_payload_arrives() -> None:
    error = violation(bytes.fromhex("827f0000000100000000"), max_message=1 << 20)  # header of a 4 GiB frame
    assert error.code == 1009
    assert str(error) == f"message exceeds {1 << 20} bytes"


def test_too_big_counts_every_fragment() -> None:
    assert feed_all(FrameParser(8), b"\x01\x04abcd", b"\x80\x04efgh") == [Message("abcdefgh")]
    assert violation(b"\x01\x04abcd", b"\x00\x04efgh", max_message=7).code == 1009


def test_too_big_on_the_fast_path() -> None:
    assert violation(HELLO, max_message=4).code == 1009


def test_a_message_of_exactly_max_message_is_fine() -> None:
    assert FrameParser(5).feed(HELLO) == [Message("Hello")]


def test_64_bit_length_with_the_top_bit_set() -> None:
    assert violation(bytes.fromhex("827f8000000000000001")).code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_invalid_close_codes(code: int) -> None:
    error = violation(b"\x88\x02" + code.to_bytes(2, "big"))
    assert (error.code, str(error)) == (1002, f"close frame with invalid code {code}")


def test_one_byte_close_body() -> None:
    error = violation(b"\x88\x01\x03")
    assert (error.code, str(error)) == (1002, "close frame with a one-byte body")


def test_close_reason_not_utf8_is_1007() -> None:
    assert violation(b"\x88\x04\x03\xe8\xc3\x28").code == 1007


def test_events_before_a_violation_are_kept_on_the_error() -> None:
    error = violation(HELLO + PING_HELLO + b"GARBAGE")
    assert error.events == [Message("Hello"), Ping(b"Hello")]


def test_parser_stops_after_a_violation() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError):
        parser.feed(b"\x80\x02lo")
    assert parser.closed
    assert parser.feed(HELLO) == []


# -- buffered ------------------------------------------------------------------------------------------
def test_buffered_counts_the_bytes_of_an_incomplete_frame() -> None:
    parser = ws.FrameParser()
    frame = b"\x81\x05Hello"
    assert parser.feed(frame + frame[:3]) == [ws.Message("Hello")]
    assert parser.buffered == 3
    assert parser.feed(frame[3:]) == [ws.Message("Hello")]
    assert parser.buffered == 0
