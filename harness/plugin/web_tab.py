"""The rtbench tab in Locust's web UI, through Locust's own extension points (no fork of its frontend).

Locust's React UI shows extra tabs named in ``template_args["extended_tabs"]`` as tables whose rows
arrive with every ``/stats/requests`` poll under ``extended_stats``: the rtbench tab is such a table of
the live figures. A table holds text only, so the chart and the links to each run's report.html live on
a small page of ours, ``/rtbench`` (no CDN, polling ``/rtbench/live``), linked from the tab and from
Locust's "Download Data" tab. Every figure comes from ``report/live.py``: the merged HdrHistograms while
the run goes, summary.json once it is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import gevent
from flask import Response, abort, request, send_from_directory
from locust.env import Environment

from harness.plugin.master_role import MasterRole
from harness.report import live

log = logging.getLogger("rtbench")
TAB_KEY = "rtbench"
PAGE_DIR = Path(__file__).with_name("webui")
#: the files of a run folder the web UI serves
SERVED_FILES = frozenset({"report.html", "summary.json", "timeseries.csv", "latency.hlog", "generators.json"})
READY_TIMEOUT_S = 10.0


def install(environment: Environment, master: MasterRole) -> None:
    """Add the routes, the tab and its rows to this process's web UI."""
    web_ui: Any = environment.web_ui  # Locust's WebUI is untyped
    assert web_ui is not None
    guard = web_ui.auth_required_if_enabled
    view = live.LiveView(master.collector)

    def payload() -> dict[str, Any]:
        runner = environment.runner
        data = view.figures(master.load_request(), str(runner.state) if runner else "missing")
        data["run"], data["runs"] = current_run(master, data), finished_runs(master)
        return data

    def live_view() -> Response:
        """In summary.json's key order (``jsonify`` would sort the keys)."""
        return Response(json.dumps(payload()), mimetype="application/json")

    def page() -> Response:
        return send_from_directory(PAGE_DIR, "rtbench.html")

    def run_file(name: str, filename: str) -> Response:
        folder = master.runs.get(name)
        if folder is None or filename not in SERVED_FILES or not (folder / filename).is_file():
            abort(404)
        return send_from_directory(folder.resolve(), filename)

    app: Any = web_ui.app
    app.add_url_rule("/rtbench/live", "rtbench_live", guard(live_view))
    app.add_url_rule("/rtbench", "rtbench_page", guard(page))
    app.add_url_rule("/rtbench/runs/<name>/<filename>", "rtbench_run_file", guard(run_file))

    def add_tab_rows(response: Response) -> Response:
        """Locust's UI polls ``/stats/requests``; the tab's rows ride along as ``extended_stats``."""
        if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
            return response
        data = response.get_json()
        data["extended_stats"] = [{"key": TAB_KEY, "data": tab_rows(payload())}]
        response.set_data(json.dumps(data))
        return response

    app.after_request(add_tab_rows)

    web_ui.template_args["extended_tabs"] = [{"title": "rtbench", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": "figure", "title": "Figure"}, {"key": "value", "title": "Value"}]}
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "/rtbench", "title": "rtbench: live chart and every run's report.html"},
        {"href": "/rtbench/live", "title": "rtbench: live figures (JSON)"},
    ]
    gevent.spawn(_say_where, web_ui)


def tab_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """The live figures as rows, then where the run is written and its report once there is one."""
    run = data["run"]
    extra = [
        {"figure": "run folder", "value": run["folder"] or "none yet"},
        {"figure": "report", "value": run["report"] or "when the run ends"},
        {"figure": "live chart", "value": "/rtbench"},
    ]
    return live.rows(data) + extra


def current_run(master: MasterRole, data: dict[str, Any]) -> dict[str, str | None]:
    """The run the figures belong to: its folder, and its report's URL once it is written."""
    folder = next(reversed(master.runs.values()), None)  # the latest run (kept in the order they started)
    report = None
    if folder is not None and data["final"] and (folder / "report.html").is_file():
        report = f"/rtbench/runs/{folder.name}/report.html"
    return {"name": folder.name if folder else None, "folder": str(folder) if folder else None, "report": report}


def finished_runs(master: MasterRole) -> list[dict[str, str]]:
    """Every run of this session whose report.html exists, oldest first."""
    return [
        {"name": name, "folder": str(folder), "report": f"/rtbench/runs/{name}/report.html"}
        for name, folder in master.runs.items()
        if (folder / "report.html").is_file()
    ]


def _say_where(web_ui: Any) -> None:
    """One line with the web UI's real address, so ``--web-port 0`` can be used (Locust logs the option)."""
    deadline = gevent.get_hub().loop.now() + READY_TIMEOUT_S
    while gevent.get_hub().loop.now() < deadline:
        server = web_ui.server
        if server is not None and getattr(server, "started", False):
            host, port = server.socket.getsockname()[:2]
            log.info("rtbench: web UI listening http://%s:%d", host, port)
            return
        gevent.sleep(0.05)
