"""What each protocol promises, which the checklist holds the server to (and says in its lines)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolFacts:
    #: whether the sender's own connection hears its event back (when it has one to hear it on)
    echoes_sender: bool
    #: the rule, in the words a result line uses
    echo_rule: str
    #: what to try when the server refuses client A's events (said after the server's words)
    refused_hint: str = ""
    #: whether a client can ask not to hear its own events (one that asked then must not)
    echo_optout: bool = False


FACTS: dict[str, ProtocolFacts] = {
    "socketio": ProtocolFacts(True, "io.emit broadcasts to every client, the sender included"),
    "sse": ProtocolFacts(False, "SSE is one-way: a client publishes with a POST, the app's publish path"),
    "pusher": ProtocolFacts(
        False,
        "Pusher never echoes a client event to its sender",
        "client A sends client events: enable them for the app, or give --channel-type public to publish "
        "with the Events API instead",
    ),
    "ably": ProtocolFacts(
        True, "Ably echoes a client's own messages unless it connected with echo=false", echo_optout=True
    ),
}

DEFAULT_FACTS = ProtocolFacts(False, "the provider states no echo rule")


def facts_for(provider: str) -> ProtocolFacts:
    return FACTS.get(provider, DEFAULT_FACTS)
