"""Error reasons grouped by kind: the volatile parts of a reason (timestamps, ports, hashes, ids) become
placeholders, so ``errors_by_reason`` counts one entry per kind of failure, not one per request.

A server that embeds its clock in every refusal (Pusher's 401 "Timestamp expired: given timestamp
(1764567890) ...", or its signature hint carrying ``auth_timestamp`` and ``body_md5``) would otherwise
split one failure into as many reasons as seconds it lasted. Short numbers stay: HTTP statuses, errno
values and close codes such as Pusher's 4001 are what tells kinds apart.
"""

from __future__ import annotations

import re

MAX_REASON = 200

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
#: a run of 8+ hex characters with a digit and a letter among them: a hash, a token, a run or socket id
_HEX = re.compile(r"(?<![0-9a-z])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![0-9a-z])", re.IGNORECASE)
#: 5+ digits: a timestamp, a port, a sequence number, a byte count (codes have at most 4)
_NUMBER = re.compile(r"\d{5,}")


def kind(reason: str) -> str:
    """``reason`` with its volatile parts replaced (``<id>``, ``<n>``), cut to ``MAX_REASON`` characters."""
    reason = _UUID.sub("<id>", reason)
    reason = _HEX.sub("<id>", reason)
    return _NUMBER.sub("<n>", reason)[:MAX_REASON]
