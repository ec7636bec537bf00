"""``rtbench compare``: every available provider at small load end to end, and ``--from`` stored runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from harness import cli
from harness.report import compare
from harness.report.rundata import load_run
from tests.report.conftest import CliResult, rtbench, synthetic_run


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_compare_every_available_provider_end_to_end(tmp_path: Path) -> None:
    """No provider named: all from the registry. The gate is one nobody can pass, so exit is 1 and
    each row shows FAIL while the runs themselves succeed."""
    out = tmp_path / "cmp"
    result = rtbench(
        "compare",
        "-u",
        "10",
        "-t",
        "3s",
        "--out",
        str(out),
        "--gate",
        "p99<50ms",
        "--gate",
        "published<1",
        "--no-progress",
        timeout=400,
    )
    expected = cli.runnable_providers(cli.scenarios_dir())
    assert "socketio" in expected
    assert result.returncode == 1, result.stdout + result.stderr
    rows = _rows(out / "compare.csv")
    assert [r["label"] for r in rows] == expected
    for row in rows:
        assert row["error"] == "", row
        assert row["passed"] == "False" and "published<1=FAIL" in row["gates"]
        assert float(row["p99_ms"]) > 0 and int(row["delivered"]) > 0 and row["users"] == "10"
        assert (out / row["run_dir"] / "report.html").exists()
    index = (out / "index.html").read_text()
    for name in expected:
        assert f'href="{name}/report.html"' in index
    assert index.count("<svg") == 1 and "NOT ALL PASSED" in index


def test_compare_from_stored_runs(
    tmp_path: Path, real_run: tuple[Path, CliResult], capsys: pytest.CaptureFixture[str]
) -> None:
    real, _ = real_run
    slow = synthetic_run(tmp_path / "slow", provider="sse", scale_ms=3.0)
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--from", str(real), str(slow), "--out", str(out), "--gate", "p99<100ms"]) == 0
    rows = _rows(out / compare.CSV)
    assert [r["provider"] for r in rows] == ["socketio", "sse"]
    assert all(r["passed"] == "True" and r["gates"] == "p99<100ms=pass" for r in rows)
    stdout = capsys.readouterr().out
    assert "socketio" in stdout and "sse" in stdout and str(out / "index.html") in stdout
    # gates re-evaluated: a tighter one fails the slow run only
    assert cli.main(["compare", "--from", str(real), str(slow), "--out", str(out), "--gate", "p99<25ms"]) == 1
    rows = _rows(out / compare.CSV)
    assert [r["passed"] for r in rows] == ["True", "False"]


def test_same_provider_twice_is_labelled_by_folder(tmp_path: Path) -> None:
    a = synthetic_run(tmp_path / "before")
    b = synthetic_run(tmp_path / "after", scale_ms=2.0)
    index = compare.write_compare(compare.make_entries([load_run(a), load_run(b)], None), tmp_path / "cmp")
    text = index.read_text()
    assert "socketio (before)" in text and "socketio (after)" in text
    assert 'href="../before/summary.json"' in text  # no report.html there: link the summary


def test_failed_runs_are_shown_not_dropped(tmp_path: Path) -> None:
    a = synthetic_run(tmp_path / "ok")
    entries = [
        *compare.make_entries([load_run(a)], None),
        compare.Entry(label="pusher", error="locust exited with status 1"),
    ]
    index = compare.write_compare(entries, tmp_path / "cmp")
    assert "run failed: locust exited with status 1" in index.read_text()
    rows = _rows(tmp_path / "cmp" / compare.CSV)
    assert rows[1]["label"] == "pusher" and rows[1]["passed"] == "False" and "status 1" in rows[1]["error"]
