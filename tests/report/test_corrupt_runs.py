"""Hand-corrupted run folders: ``rtbench gate``, ``report`` and ``compare --from`` refuse each in one line
naming the file and the field (or line), exit 2, no traceback; a valid folder still reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from harness import cli
from harness.measure import hist, validate
from harness.measure.records import Summary
from harness.report import rundata
from tests.report.conftest import make_summary, synthetic_run


def _set(summary: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b[0].c`` in a decoded summary; ``value`` DELETE removes the key."""
    parts = dotted.replace("[", ".[").split(".")
    node: Any = summary
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[int(last[1:-1]) if last.startswith("[") else last] = value


DELETE = object()


def field(dotted: str, value: Any) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        path = folder / rundata.SUMMARY
        summary = json.loads(path.read_text(encoding="utf-8"))
        _set(summary, dotted, value)
        path.write_text(json.dumps(summary, indent=2), encoding="utf-8")

    return corrupt


def replace_in(name: str, old: str, new: str) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        path = folder / name
        text = path.read_text(encoding="ascii")
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return corrupt


def append_to(name: str, data: bytes) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        with (folder / name).open("ab") as handle:
            handle.write(data)

    return corrupt


def overwrite(name: str, data: bytes) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        (folder / name).write_bytes(data)

    return corrupt


def hlog_line(folder: Path, index: int) -> str:
    """The ``index``-th data line of the folder's latency.hlog."""
    lines = (folder / rundata.HLOG).read_text(encoding="ascii").splitlines()
    return [line for line in lines if line and line[0] not in '#"'][index]


def hlog_histogram(transform: Callable[[str], str]) -> Callable[[Path], None]:
    """Replace the third interval's histogram by ``transform`` of it."""

    def corrupt(folder: Path) -> None:
        line = hlog_line(folder, 2)
        head, payload = line.rsplit(",", 1)
        replace_in(rundata.HLOG, line, f"{head},{transform(payload)}")(folder)

    return corrupt


def _another_histogram() -> str:
    big = HdrHistogram(1, 10**12, 3)
    big.record_value(10**11)  # beyond the harness's one hour: does not fit its histograms
    return str(big.encode().decode("ascii"))


@dataclass(frozen=True)
class Case:
    id: str
    corrupt: Callable[[Path], None]
    fragments: tuple[str, ...]  # the file and where in it, as the one error line must say
    summary: bool = True  # False: the hlog or csv, which `rtbench gate` does not read

    @property
    def commands(self) -> tuple[str, ...]:
        return ("gate", "report", "compare") if self.summary else ("report", "compare")


S, H, T = rundata.SUMMARY, rundata.HLOG, rundata.TIMESERIES
CASES = [
    Case(
        "trustworthy-string",
        field("harness.trustworthy", "false"),
        (S, 'harness.trustworthy must be true or false, got "false"'),
    ),
    Case("p99-string", field("latency_ms.p99", "49"), (S, "latency_ms.p99 must be a finite number")),
    Case("p99-bool", field("latency_ms.p99", True), (S, "latency_ms.p99", "got true")),
    Case("count-fraction", field("connect_ms.count", 1.5), (S, "connect_ms.count must be an integer, got 1.5")),
    Case("lost-null", field("messages.lost", None), (S, "messages.lost", "got null")),
    Case("load-list", field("load", [1, 2]), (S, "load must be an object")),
    Case("duration-string", field("load.duration_s", "10s"), (S, "load.duration_s")),
    Case("provider-number", field("provider", 7), (S, "provider must be a string")),
    Case("gate-value", field("gates[0].value", "49ms"), (S, "gates[0].value")),
    Case("gate-passed", field("gates[1].passed", "yes"), (S, "gates[1].passed must be true or false")),
    Case("gate-missing-value", field("gates[0].value", DELETE), (S, "gates[0].value is missing")),
    Case("gates-object", field("gates", {"expr": "p99<50ms"}), (S, "gates must be a list")),
    Case("reasons-string", field("harness.reasons", "lag"), (S, "harness.reasons must be a list")),
    Case(
        "generator-cpu", field("harness.generators[0].cpu_peak_pct", "20%"), (S, "harness.generators[0].cpu_peak_pct")
    ),
    Case("error-count", field("errors_by_reason", {"timeout": "3"}), (S, 'errors_by_reason["timeout"]')),
    Case("steady-string", field("steady_from_ns", "soon"), (S, "steady_from_ns must be an integer or null")),
    Case("p99-nan", replace_in(S, '"p99": ', '"p99": NaN, "was": '), (S, "latency_ms.p99", "got NaN")),
    Case(
        "connect-histogram",
        field("histograms", {"connect": "!!!notbase64"}),
        (S, "histograms.connect", "valid histogram"),
    ),
    Case(
        "fanout-truncated",
        field("histograms", {"fanout": hist.encode(hist.new())[:20]}),
        (S, "histograms.fanout", "valid histogram"),
    ),
    Case("json-nested", overwrite(S, b"[" * 100_000), (S, "nested too deeply")),
    Case("hlog-non-ascii", append_to(H, "0.1,1.0,2.0,HISTF\u00e9\n".encode()), (H, "line 18", "not ASCII"), False),
    Case("hlog-garbage-line", append_to(H, b"hello world\n"), (H, "line 18", "not an interval"), False),
    Case("hlog-binary", overwrite(H, bytes(range(256)) * 4), (H, "line 1", "NUL"), False),
    Case("hlog-bad-base64", hlog_histogram(lambda p: p[:-1] + "!"), (H, "line 8", "valid histogram"), False),
    Case("hlog-truncated", hlog_histogram(lambda p: p[: len(p) // 2]), (H, "line 8", "valid histogram"), False),
    Case("hlog-random-bytes", hlog_histogram(lambda p: "SGVsbG8gd29ybGQh"), (H, "line 8", "valid histogram"), False),
    Case(
        "hlog-foreign-histogram",
        hlog_histogram(lambda p: _another_histogram()),
        (H, "line 8", "valid histogram"),
        False,
    ),
    Case("hlog-start-text", replace_in(H, "\n2.000,", "\nsoon,"), (H, "line 8, StartTimestamp", '"soon"'), False),
    Case("csv-ragged-long", replace_in(T, "\n3.0,", "\n3.0,1,"), (T, "line 4", "14 cells, the header has 13"), False),
    Case("csv-ragged-short", append_to(T, b"13.0,100,10\n"), (T, "line 14", "3 cells"), False),
    Case(
        "csv-not-number", replace_in(T, "\n5.0,100,", "\n5.0,lots,"), (T, "line 6, column connections", '"lots"'), False
    ),
    Case("csv-infinite", replace_in(T, "\n5.0,100,", "\n5.0,inf,"), (T, "line 6, column connections", "finite"), False),
    Case("csv-binary", overwrite(T, b"\x89PNG\r\n\x1a\n\x00\x00"), (T, "line 1", "not ASCII"), False),
    Case("csv-nul", append_to(T, b"13.0,\x00\n"), (T, "line 14", "NUL"), False),
    Case("csv-not-timeseries", overwrite(T, b"name,age\nbob,3\n"), (T, "line 1", "no elapsed_s column"), False),
]
RUNS = [(case, command) for case in CASES for command in case.commands]


def run_command(command: str, folder: Path, out: Path) -> int:
    if command == "gate":
        return cli.main(["gate", str(folder), "--require-trustworthy"])
    if command == "report":
        return cli.main(["report", str(folder)])
    return cli.main(["compare", "--from", str(folder), "--out", str(out)])


@pytest.mark.parametrize("command", ["gate", "report", "compare"])
def test_the_folder_is_fine_before_it_is_corrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder = synthetic_run(tmp_path / "run")
    assert run_command(command, folder, tmp_path / "cmp") == (0 if command == "report" else 1)  # stored loss==0 fails
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("case", "command"), RUNS, ids=[f"{c.id}-{cmd}" for c, cmd in RUNS])
def test_corrupt_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case, command: str
) -> None:
    folder = synthetic_run(tmp_path / "run")
    case.corrupt(folder)
    code = run_command(command, folder, tmp_path / "cmp")
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.startswith("rtbench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    for fragment in case.fragments:
        assert fragment in err, err


def test_a_summary_as_built_passes_its_own_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every annotation of the Summary record is understood, and the writer's output fits it."""
    from tests.unit.fake_reports import fake_clock, two_generators
    from tests.unit.test_summary_build import summarize

    fake_clock(monkeypatch)
    (_, a), (_, b) = two_generators()
    summary = summarize([a, b])
    summary["parameters"] = {"users": 3, "host": None, "nested": {"tags": ["a"]}}
    validate.check(json.loads(json.dumps(summary)), Summary, required=rundata.REQUIRED_FIELDS)
    assert summary["steady_from_ns"] is not None
    summary["steady_from_ns"] = None
    (tmp_path / S).write_text(json.dumps(summary), encoding="utf-8")
    assert rundata.read_summary(tmp_path / S) == summary


def test_older_and_newer_summaries_still_load(tmp_path: Path) -> None:
    """Keys a summary lacks are allowed (older runs); keys the record does not know are ignored (newer)."""
    old = make_summary()
    for key in ("errors_by_reason", "foreign_messages", "harness", "connections"):
        del old[key]
    old["a_later_key"] = {"anything": [1, "two"]}
    (tmp_path / S).write_text(json.dumps(old), encoding="utf-8")
    assert rundata.read_summary(tmp_path / S) == old


def test_a_written_folder_reads_back_with_blank_health_columns(tmp_path: Path) -> None:
    folder = synthetic_run(tmp_path / "run")
    frame = rundata.read_timeseries(folder / T)
    assert str(frame["connections"].dtype) == "int64" and str(frame["open_gaps"].dtype) == "float64"
    assert frame["open_gaps"].isna().all() and len(frame) == 12
    latency = rundata.read_hlog(folder / H)
    assert latency is not None and latency.get_total_count() == 12 * 200
    (folder / T).write_bytes(b"")
    assert len(rundata.read_timeseries(folder / T)) == 0  # a run that ended before its header was written


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (1, bool, "must be true or false, got 1"),
        (True, int, "must be an integer, got true"),
        (float("inf"), float, "must be a finite number, got Infinity"),
        ("x" * 100, int, 'must be an integer, got "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'),
        ([1, "2"], list[int], "[1] must be an integer"),
        ({"a": None}, dict[str, int | None], None),
        ({"a": 1.5}, dict[str, int | None], '["a"] must be an integer or null'),
    ],
)
def test_check_names_the_value_and_the_expected_type(value: Any, kind: Any, message: str | None) -> None:
    if message is None:
        validate.check(value, kind)
        return
    with pytest.raises(validate.SchemaError) as caught:
        validate.check(value, kind, path="x")
    assert str(caught.value).startswith(f"x{'' if message.startswith('[') else ' '}{message}")
