"""Ably push latency: ``locust -f scenarios/ably.py`` (no --host => embedded Ably-protocol target).

Subscribers are lean realtime clients timed at the socket (msgpack by default; ``--client official`` for
``ably`` AblyRealtime connections timed in their callback); one publisher publishes
probes on the open-model schedule, on a realtime connection awaiting each ACK (``--ably-publish realtime``)
or through the REST API (``--ably-publish rest``). With ``ABLY_API_KEY`` set (or ``--ably-key``) and no
``--host`` the run goes to the real Ably service. Options: ``locust -f scenarios/ably.py --help``.
"""

from harness.plugin.hooks import setup
from harness.plugin.users import PublisherUser, SubscriberUser

setup("ably")


class AblySubscriber(SubscriberUser):
    weight = 1


class AblyPublisher(PublisherUser):
    fixed_count = 1
