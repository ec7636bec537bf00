"""Our lean Pusher client against the reference target: endpoints and options, subscribe/publish on every
channel type, refusals, liveness and reconnection after a server restart."""

from __future__ import annotations

import asyncio

import pytest

from harness.net.reconnect import GiveUp
from harness.protocols import pusher as proto
from harness.providers.base import ProviderConfigError
from harness.providers.http import close_shared_session
from harness.providers.pusher import Endpoints, PusherProvider, PusherRefused
from tests.helpers import TargetProcess, start_target
from tests.pusher.conftest import Inbox, options, provider_for, run

Target = tuple[str, TargetProcess]
ENV = ("PUSHER_APP_ID", "PUSHER_KEY", "PUSHER_SECRET", "PUSHER_CLUSTER")


@pytest.fixture(autouse=True)
def _no_pusher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# -- endpoints and options (no network) -----------------------------------------------------------


def test_no_host_and_no_credentials_is_the_embedded_target() -> None:
    assert PusherProvider.describe_target(None, options()) == "embedded"
    assert PusherProvider.cloud_host(options()) is None
    endpoints = Endpoints.resolve("http://127.0.0.1:6001", options())
    assert (endpoints.app_id, endpoints.key, endpoints.secret) == (
        proto.LOCAL_APP_ID,
        proto.LOCAL_KEY,
        proto.LOCAL_SECRET,
    )
    assert endpoints.ws_url.startswith("ws://127.0.0.1:6001/app/rtbench-key?protocol=7&")
    assert (endpoints.api_host, endpoints.api_port, endpoints.api_tls, endpoints.cloud) == (
        "127.0.0.1",
        6001,
        False,
        False,
    )


def test_credentials_from_the_environment_and_no_host_mean_real_pusher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in zip(ENV, ("123", "cloudkey", "cloud-secret-value", "eu"), strict=True):
        monkeypatch.setenv(name, value)
    opts = options()
    PusherProvider.validate(opts)
    assert PusherProvider.describe_target(None, opts) == "cloud"
    endpoints = Endpoints.resolve("http://127.0.0.1:9999", opts)  # the embedded URL is ignored
    assert endpoints.cloud and endpoints.ws_url.startswith("wss://ws-eu.pusher.com:443/app/cloudkey?protocol=7")
    assert (endpoints.api_host, endpoints.api_port, endpoints.api_tls) == ("api-eu.pusher.com", 443, True)
    assert "cloud-secret-value" not in repr(endpoints)
    assert PusherProvider.cloud_host(opts) == "https://api-eu.pusher.com"
    # the URL the runtime passes (embedded target or cloud_host) changes nothing in cloud mode
    assert Endpoints.resolve("https://api-eu.pusher.com", opts) == endpoints
    # with --host the same credentials go to that server instead
    assert PusherProvider.describe_target("https://pusher.example:8443", options("https://pusher.example:8443")) == (
        "external"
    )
    external = Endpoints.resolve("https://pusher.example:8443", options("https://pusher.example:8443"))
    assert external.ws_base == "wss://pusher.example:8443" and external.key == "cloudkey" and not external.cloud


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHER_KEY", "from-env")
    endpoints = Endpoints.resolve("http://h:1", options("http://h:1", key="from-flag", cluster="ap1"))
    assert endpoints.key == "from-flag"
    cloud = Endpoints.resolve("", options(app_id="1", key="k", secret="s", cluster="ap1"))
    assert cloud.ws_base == "wss://ws-ap1.pusher.com:443"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"key": "only-a-key"}, "--app-id (PUSHER_APP_ID), --secret (PUSHER_SECRET)"),
        ({"app_id": "abc", "key": "k", "secret": "s"}, "digits"),
        ({"event": "client-x"}, "--event"),
        ({"event": "pusher:x"}, "--event"),
        ({"event": " "}, "--event"),
        ({"channel_type": "secret"}, "--channel-type"),
        ({"app_id": "1", "key": "k", "secret": "hush-hush", "cluster": "eu/../x"}, "--cluster"),
    ],
)
def test_bad_options_are_one_line_config_errors(overrides: dict[str, str], fragment: str) -> None:
    with pytest.raises(ProviderConfigError) as info:
        PusherProvider.validate(options(**overrides))
    assert fragment in str(info.value)
    assert "hush-hush" not in str(info.value)


# -- against the reference target ----------------------------------------------------------------


@pytest.mark.parametrize("channel_type", ["public", "private", "presence"])
def test_subscribe_and_publish_on_every_channel_type(target: Target, channel_type: str) -> None:
    async def body() -> None:
        provider = provider_for(target[0], channel_type=channel_type)
        inboxes = [Inbox(), Inbox()]
        try:
            subscribers = [await provider.open_subscriber("rtbench-7", inbox.hooks()) for inbox in inboxes]
            publisher = await provider.open_publisher()
            for n in range(3):
                await publisher.publish("rtbench-7", f"probe-{n}")
            for inbox in inboxes:
                assert await inbox.wait_for(3) == ["probe-0", "probe-1", "probe-2"]
            for subscriber in subscribers:
                await subscriber.close()
            await publisher.close()
        finally:
            await provider.aclose()
            await close_shared_session()

    run(body())


def test_refusals_surface_as_connect_errors(target: Target) -> None:
    async def body() -> None:
        try:
            # refusals are final (GiveUp: the reconnect driver would not retry them either)
            with pytest.raises(PusherRefused) as info:
                await provider_for(target[0], key="no-such-key").open_subscriber("rtbench-0", Inbox().hooks())
            assert info.value.code == proto.CloseCode.APP_NOT_FOUND and isinstance(info.value, GiveUp)
            assert "App key no-such-key not in this cluster" in str(info.value)
            with pytest.raises(PusherRefused, match="subscription to private-rtbench-0 refused: Invalid signature"):
                await provider_for(target[0], secret="wrong", channel_type="private").open_subscriber(
                    "rtbench-0", Inbox().hooks()
                )
            publisher = await provider_for(target[0], secret="wrong").open_publisher()
            with pytest.raises(RuntimeError, match="HTTP 401"):
                await publisher.publish("rtbench-0", "x")
        finally:
            await close_shared_session()

    run(body())


def test_reconnects_and_resubscribes_after_a_server_restart() -> None:
    url, proc = start_target("targets.pusher", "--port", "0")
    port = url.rsplit(":", 1)[1]

    async def body() -> None:
        provider = PusherProvider(url, options(url, channel_type="presence"))
        inbox = Inbox()
        try:
            subscriber = await provider.open_subscriber("rtbench-0", inbox.hooks())
            await asyncio.get_running_loop().run_in_executor(None, proc.stop)
            await asyncio.wait_for(inbox.dropped.wait(), 5)
            restarted = await asyncio.get_running_loop().run_in_executor(
                None, lambda: start_target("targets.pusher", "--port", port)
            )
            try:
                await asyncio.wait_for(inbox.resubscribed.wait(), 10)
                publisher = await provider.open_publisher()
                await publisher.publish("rtbench-0", "after-restart")
                assert await inbox.wait_for(1) == ["after-restart"]
                assert inbox.drops == 1 and inbox.resubscribes == 1
                # the time back is reported (issue 11 item 7): from the drop to the new subscription
                assert len(inbox.reconnect_ns) == 1 and 1e9 <= inbox.reconnect_ns[0] < 15e9, inbox.reconnect_ns
                assert inbox.errors == [], inbox.errors  # the target said goodbye (1001): a clean close
                await subscriber.close()
            finally:
                restarted[1].stop()
        finally:
            await provider.aclose()
            await close_shared_session()

    try:
        run(body(), timeout=30)
    finally:
        proc.stop()


def test_answers_server_pings_and_stays_subscribed() -> None:
    url, proc = start_target("targets.pusher", "--port", "0", "--activity-timeout", "1", "--pong-timeout", "1")

    async def body() -> None:
        provider = PusherProvider(url, options(url))
        inbox = Inbox()
        try:
            subscriber = await provider.open_subscriber("rtbench-0", inbox.hooks())
            await asyncio.sleep(2.5)  # the behaviour under test is what happens over time: pinged twice
            publisher = await provider.open_publisher()
            await publisher.publish("rtbench-0", "still-here")
            assert await inbox.wait_for(1) == ["still-here"]
            assert inbox.drops == 0
            await subscriber.close()
        finally:
            await provider.aclose()
            await close_shared_session()

    try:
        run(body())
    finally:
        proc.stop()
