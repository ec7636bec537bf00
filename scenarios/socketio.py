"""Socket.IO push latency: ``locust -f scenarios/socketio.py`` (no --host => embedded target).

Subscribers hold python-socketio AsyncClient connections (websocket transport); one publisher emits
probes on the open-model schedule. Options: ``locust -f scenarios/socketio.py --help``.
"""

from harness.plugin.hooks import setup
from harness.plugin.users import PublisherUser, SubscriberUser

setup("socketio")


class SocketIOSubscriber(SubscriberUser):
    weight = 1


class SocketIOPublisher(PublisherUser):
    fixed_count = 1
