"""A scenario on the in-memory loopback provider: the whole plugin, with no target and no sockets."""

from harness.plugin.hooks import setup
from harness.plugin.users import PublisherUser, SubscriberUser

setup("loopback")


class LoopbackSubscriber(SubscriberUser):
    weight = 1


class LoopbackPublisher(PublisherUser):
    fixed_count = 1
