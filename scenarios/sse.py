"""Server-Sent Events push latency: ``locust -f scenarios/sse.py`` (no --host => embedded target).

Subscribers hold EventSource streams on ``GET /api/events`` (Last-Event-ID reconnection, as a browser);
one publisher POSTs probes to ``/api/publish`` on the open-model schedule. Any SSE endpoint works with
``--host URL --sse-path PATH --event NAME``. Options: ``locust -f scenarios/sse.py --help``.
"""

from harness.plugin.hooks import setup
from harness.plugin.users import PublisherUser, SubscriberUser

setup("sse")


class SSESubscriber(SubscriberUser):
    weight = 1


class SSEPublisher(PublisherUser):
    fixed_count = 1
