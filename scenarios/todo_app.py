"""The blueprint's app as the workload: ``locust -f scenarios/todo_app.py --provider socketio|sse|pusher|ably``.

Writers create todos through ``POST /api/todos`` at ``--mutation-rate`` (open model); readers hold a
push subscription and, like a TanStack Query client, refetch ``GET /api/todos`` on each event
(``--refetch none|always|coalesced``). Measured: ``mutation_ms``, ``event_ms``, ``fresh_ms`` and the
refetch stampede (summary.json ``todo_app``). Options: ``locust -f scenarios/todo_app.py --help``.
"""

from harness.plugin.hooks import setup_app
from harness.plugin.users import ReaderUser, WriterUser

setup_app()


class TodoReader(ReaderUser):
    weight = 1


class TodoWriter(WriterUser):
    fixed_count = 1
