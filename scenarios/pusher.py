"""Pusher Channels push latency: ``locust -f scenarios/pusher.py`` (no --host => embedded target).

Subscribers hold our protocol-7 websocket client (``--channel-type public|private|presence``, auth signed
locally); one publisher triggers probes through the Events API, signed by the official ``pusher`` SDK.
Real Pusher: set PUSHER_APP_ID / PUSHER_KEY / PUSHER_SECRET / PUSHER_CLUSTER (or the flags) and give no
--host. Options: ``locust -f scenarios/pusher.py --help``.
"""

from harness.plugin.hooks import setup
from harness.plugin.users import PublisherUser, SubscriberUser

setup("pusher")


class PusherSubscriber(SubscriberUser):
    weight = 1


class PusherPublisher(PublisherUser):
    fixed_count = 1
