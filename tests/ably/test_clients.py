"""The official clients judge compatibility: ably-python (msgpack and JSON, realtime and REST) and ably-js, against
the target and, through the provider, next to the lean subscriber (the default) and ``--client official``."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
from typing import Any

import pytest
from ably import AblyRealtime
from ably.types.connectionstate import ConnectionState
from ably.util.exceptions import AblyException

from harness.providers.ably import AblyProvider
from harness.providers.base import RX_CALLBACK, RX_KERNEL, ProviderConfigError, SubscriberHooks
from tests.ably.conftest import TEST_KEY, Target
from tests.helpers import NODE_DIR, node_available


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def options(**kw: Any) -> argparse.Namespace:
    base = {
        "ably_key": TEST_KEY,
        "ably_publish": "realtime",
        "ably_format": "msgpack",
        "event": "ev",
        "ably_endpoint": "",
        "host": "http://set-on-the-command-line",
        "client": "lean",
    }
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("client", ["lean", "official"])
@pytest.mark.parametrize("fmt", ["msgpack", "json"])
@pytest.mark.parametrize("publish", ["realtime", "rest"])
def test_ably_python_through_the_provider(target: Target, fmt: str, publish: str, client: str) -> None:
    async def scenario() -> None:
        provider = AblyProvider(target.url, options(ably_format=fmt, ably_publish=publish, client=client))
        got: list[list[object]] = [[], []]
        arrived = asyncio.Event()

        def hooks(i: int) -> SubscriberHooks:
            def on_data(data: object, rx_ns: int) -> None:
                got[i].append(data)
                if all(len(g) == 3 for g in got):
                    arrived.set()

            return SubscriberHooks(on_data=on_data)

        subs = [await provider.open_subscriber("chan", hooks(i)) for i in range(2)]
        assert [s.rx_clock for s in subs] == [RX_KERNEL if client == "lean" else RX_CALLBACK] * 2
        publisher = await provider.open_publisher()
        for i in range(3):
            await publisher.publish("chan", f"probe-{i}")
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [["probe-0", "probe-1", "probe-2"]] * 2
        await publisher.close()
        for sub in subs:
            await sub.close()
        await provider.aclose()

    run(scenario())


@pytest.mark.parametrize("client", ["lean", "official"])
def test_wrong_key_fails_with_ablys_error_and_others_keep_working(target: Target, client: str) -> None:
    async def scenario() -> None:
        provider = AblyProvider(target.url, options(client=client))
        seen: list[object] = []
        sub = await provider.open_subscriber("chan", SubscriberHooks(on_data=lambda data, _rx: seen.append(data)))
        for key, code, status in (("testapp.k1:wrong", 40101, 401), ("other.k1:x", 40400, 404)):
            official = AblyRealtime(key, endpoint=f"127.0.0.1:{target.port}", tls=False)
            change = await asyncio.wait_for(official.connection.once_async(ConnectionState.FAILED), 10)
            assert official.connection.state == ConnectionState.FAILED
            assert (change.reason.code, change.reason.status_code) == (code, status)
            bad = AblyProvider(target.url, options(ably_key=key, client=client))
            with pytest.raises(ConnectionError, match=f"^{code} ") as info:  # a refusal: counted with its reason
                await bad.open_subscriber("chan", SubscriberHooks(on_data=lambda data, _rx: seen.append(data)))
            assert key.split(":")[1] not in str(info.value)
            await bad.aclose()
        publisher = await provider.open_publisher()
        await publisher.publish("chan", "still-here")
        while not seen:
            await asyncio.sleep(0.01)
        assert seen == ["still-here"]
        await publisher.close()
        await sub.close()
        await provider.aclose()

    run(scenario())


def test_oversized_publish_is_nacked_with_40009(target: Target) -> None:
    """The target's maxMessageSize is 4096 here; ably-python's own check only stops 64 KiB."""

    async def scenario() -> None:
        provider = AblyProvider(target.url, options())
        publisher = await provider.open_publisher()
        with pytest.raises(AblyException) as info:
            await publisher.publish("chan", "x" * 5000)
        assert (info.value.code, info.value.status_code) == (40009, 400)
        await publisher.publish("chan", "small")  # the connection is still good
        await publisher.close()
        await provider.aclose()

    run(scenario())


def test_cloud_mode_is_chosen_by_key_without_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABLY_API_KEY", raising=False)
    assert AblyProvider.describe_target(None, options(ably_key="", host=None)) == "embedded"
    assert AblyProvider.describe_target("http://h:1", options(host="http://h:1")) == "external"
    assert AblyProvider.describe_target(None, options(host=None)) == "cloud"
    monkeypatch.setenv("ABLY_API_KEY", "app.key:secret")
    assert AblyProvider.describe_target(None, options(ably_key="", host=None)) == "cloud"
    provider = AblyProvider("http://127.0.0.1:1", options(ably_key="", host=None))
    assert provider.cloud and provider.realtime_opts == {} and provider.key == "app.key:secret"
    monkeypatch.setenv("ABLY_API_KEY", "not-a-key")
    with pytest.raises(ProviderConfigError) as info:
        AblyProvider.validate(options(ably_key="", host=None))
    assert "ABLY_API_KEY" in str(info.value) and "not-a-key" not in str(info.value)
    assert AblyProvider.cloud_host(options(host=None)) == "https://rest.ably.io"
    assert AblyProvider.cloud_host(options(host="http://h:1")) is None


def test_the_spec_says_what_an_ably_key_looks_like_so_the_report_redacts_it() -> None:
    from harness.report.html import REDACTED, redact

    params = {"host": f"wss://realtime.example/?key={TEST_KEY}", "note": ["uses app.kid:abcdefSECRET"], "n": 3}
    out = redact(params, AblyProvider.secret_patterns)
    assert TEST_KEY not in str(out) and "abcdefSECRET" not in str(out) and REDACTED in out["host"]
    assert out["host"].startswith("wss://realtime.example/?key=") and out["n"] == 3
    assert redact(params)["host"] == params["host"]  # without the provider's patterns the value is not a secret


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node")
@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_ably_js(target: Target, fmt: str) -> None:
    done = subprocess.run(
        ["node", str(NODE_DIR / "ably_client_probe.js"), str(target.port), TEST_KEY, fmt],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["received"] == ["hello-0", "hello-1", "hello-2"]
    publisher = result["publisherConnectionId"]
    assert result["connectionIds"] == [publisher] * 3
    assert result["ids"] == [f"{publisher}:{i}:0" for i in range(3)]
    assert all(isinstance(t, int) and t > 0 for t in result["timestamps"])
    assert result["echoReceived"] == 0  # echoMessages:false honoured
    assert result["badKey"] == {"state": "failed", "code": 40101, "statusCode": 401}
