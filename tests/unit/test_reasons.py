"""Error reasons grouped by kind (issue 11 item 13): volatile parts go, what tells kinds apart stays."""

from __future__ import annotations

import pytest

from harness.measure import reasons
from harness.measure.recorder import Recorder
from harness.protocols import pusher as proto


def pusher_401(now: int, *, client_clock: int, body: bytes = b"{}", signature: str = "x") -> str:
    """The reason a publish refused by the Pusher target gets: its Events API 401 body, as the publisher
    and the session word it."""
    params = {
        "auth_key": "key",
        "auth_timestamp": str(client_clock),
        "auth_version": "1.0",
        "auth_signature": signature,
        "body_md5": proto.body_md5(body),
    }
    refusal = proto.verify_request("key", "secret", "POST", "/apps/1/events", params, body, now)
    assert refusal is not None
    return f"publish failed: RuntimeError: Events API answered HTTP 401: {refusal}"


def test_pusher_refusals_of_different_seconds_are_one_kind() -> None:
    recorder = Recorder("run")
    for now in range(1_764_567_890, 1_764_567_910):  # 20 seconds of a clock 700 s behind: was 20 reasons
        recorder.error(pusher_401(now, client_clock=now - 700))
    for now in range(1_764_567_890, 1_764_567_900):  # a wrong secret, each request its own timestamp and body
        recorder.error(pusher_401(now, client_clock=now, body=f'{{"n": {now}}}'.encode()))
    assert dict(recorder.error_reasons) == {
        "publish failed: RuntimeError: Events API answered HTTP 401: Timestamp expired: given timestamp (<n>) "
        "not within 600s of server time (<n>)": 20,
        "publish failed: RuntimeError: Events API answered HTTP 401: Invalid signature: you should have sent "
        "HmacSHA256Hex(POST\\n/apps/1/events\\nauth_key=key&auth_timestamp=<n>&auth_version=1.0&body_md5=<id>, ": 10,
        # (cut at MAX_REASON characters)
    }


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("Events API answered HTTP 401: Invalid signature", "Events API answered HTTP 401: Invalid signature"),
        ("pusher: 4001 App key abc not in this cluster", "pusher: 4001 App key abc not in this cluster"),
        ("websocket closed 1006", "websocket closed 1006"),
        (
            "connect failed: [Errno 111] Connect call failed ('127.0.0.1', 45678)",
            "connect failed: [Errno 111] Connect call failed ('127.0.0.1', <n>)",
        ),
        ("body_md5=99914b932bd37a50b983c5e7c90ae93b&x=1", "body_md5=<id>&x=1"),
        ("socket 3f2a9c1e-0b4d-4c1a-9e3f-1234567890ab gone", "socket <id> gone"),
        ("run 1a2b3c4d5e6f refused", "run <id> refused"),
        ("deadbeefcafe and abcdefgh", "deadbeefcafe and abcdefgh"),  # no digit: a word, not an id
    ],
)
def test_volatile_parts_become_placeholders(reason: str, kind: str) -> None:
    assert reasons.kind(reason) == kind


def test_a_reason_is_cut_after_its_placeholders() -> None:
    assert reasons.kind("1234567890" * 50) == "<n>"
    assert reasons.kind("x" * 300) == "x" * reasons.MAX_REASON
