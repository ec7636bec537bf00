"""What master and workers say to each other over Locust's runner messages, each tagged with the run id.

A worker of another run (two ``--processes`` runs on one machine) must never be merged into this one:
every report names its run, and the master refuses and counts the ones that name another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Locust monkey-patches whatever imports it; the message format needs none of it
    from locust.env import Environment

    from harness.measure.records import FinalReport, IntervalReport

#: master -> workers, before the spawn message: the run id every report must carry
RUN = "rtbench_run"
#: worker -> master, once its rtbench hooks are set up: a run may start (Locust connects a worker before
#: its plugins are set up, and a message that comes before then is dropped)
READY = "rtbench_ready"
#: worker -> master: one interval report a second
INTERVAL = "rtbench_interval"
#: worker -> master: the final report, once, after the drain
FINAL = "rtbench_final"
#: master -> workers: stop publishing, drain for ``drain_timeout`` seconds, send the final report
FINISH = "rtbench_finish"


def send(environment: Environment, kind: str, data: Any) -> None:
    """Send over this process's runner (a worker's to the master, the master's to every worker)."""
    assert environment.runner is not None
    environment.runner.send_message(kind, data)


def tagged(run_id: str, report: IntervalReport | FinalReport) -> dict[str, Any]:
    """A report as it travels: the run it belongs to and the report itself."""
    return {"run_id": run_id, "report": report}


def report_of(run_id: str, data: Any) -> Any | None:
    """The report in ``data`` when it belongs to run ``run_id``, else None (another run's, or malformed)."""
    if isinstance(data, dict) and data.get("run_id") == run_id and "report" in data:
        return data["report"]
    return None
