"""``rtbench gate``: table-driven verdicts and exit codes, JUnit XML, the GitHub step summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from tests.report.conftest import make_summary, write_summary


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["gate", *args])
    out, err = capsys.readouterr()
    return code, out, err


# (gates, summary overrides, exit code, lines the output must contain)
CASES: list[tuple[list[str], dict[str, Any], int, list[str]]] = [
    (["p99<50ms"], {}, 0, ["PASS  p99<50ms", "measured 49 ms", "verdict: PASSED"]),
    (["p99<49ms"], {}, 1, ["FAIL  p99<49ms", "verdict: FAILED"]),
    (["p99<=49ms", "p50<10.5ms"], {}, 0, ["PASS  p99<=49ms", "PASS  p50<10.5ms"]),
    (["p99<50ms", "loss==0"], {}, 1, ["PASS  p99<50ms", "FAIL  loss==0", "measured 10"]),
    (["p99.9<0.1s", "max<=80ms", "mean<12001us"], {}, 0, ["PASS  p99.9<0.1s"]),
    (["connect_p95<1s", "connect_max<999ms"], {}, 1, ["PASS  connect_p95<1s", "FAIL  connect_max<999ms"]),
    (["loss_rate<=1%"], {}, 0, ["PASS  loss_rate<=1%", "measured 1%"]),
    (["loss_rate<0.5%"], {}, 1, ["FAIL  loss_rate<0.5%"]),
    (["dup==0", "reorder<=2", "errors==0"], {}, 0, ["PASS  reorder<=2"]),
    (["deliveries_per_s>=99"], {}, 0, ["measured 99.0/s"]),
    (["deliveries_per_s>100"], {}, 1, ["FAIL  deliveries_per_s>100"]),
    (["p99<50ms"], {"latency_ms": {"count": 0, "p99": 0}}, 1, ["FAIL  p99<50ms"]),  # nothing delivered
    ([], {}, 0, ["PASS  p99<50ms"]),  # no --gate: the gates stored in the summary
    ([], {"gates": [{"expr": "loss==0", "value": 10, "passed": False}]}, 1, ["FAIL  loss==0"]),
    ([], {"gates": []}, 1, ["PASS  p99<50ms", "FAIL  loss==0"]),  # nothing stored either: the default gates
    (
        ["p99<50ms"],
        {"harness": {"trustworthy": False, "reasons": ["generator 0: lag"]}},
        0,
        ["WARN  harness not trustworthy: generator 0: lag"],
    ),
]


@pytest.mark.parametrize(("exprs", "over", "code", "expected"), CASES)
def test_gate_verdicts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exprs: list[str],
    over: dict[str, Any],
    code: int,
    expected: list[str],
) -> None:
    path = write_summary(tmp_path, make_summary(**over))
    args = [a for e in exprs for a in ("--gate", e)]
    got, out, err = gate(capsys, str(path), *args)
    assert got == code, out + err
    for text in expected:
        assert text in out
    assert err == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--gate", "p99<50"], "needs a time unit"),
        (["--gate", "p98<50ms"], "unknown metric 'p98'"),
        (["--gate", "p99 50ms"], "is not METRIC OP NUMBER"),
        (["--gate", "loss==0ms"], "takes no unit"),
        (["--gate", "p99=<50ms"], "is not METRIC OP NUMBER"),
        (["--junit"], "expected one argument"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    path = write_summary(tmp_path, make_summary())
    code, _, err = gate(capsys, str(path), *args)
    assert code == 2
    assert fragment in err
    assert err.startswith("rtbench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_unreadable_summaries_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gate(capsys, str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in err and err.count("\n") == 1
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = gate(capsys, str(tmp_path / "bad.json"))
    assert code == 2 and "not valid JSON" in err
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    code, _, err = gate(capsys, str(tmp_path / "other.json"))
    assert code == 2 and "not an rtbench summary" in err


def test_a_run_folder_is_accepted_in_place_of_its_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_summary(tmp_path, make_summary())
    code, out, _ = gate(capsys, str(tmp_path), "--gate", "p99<50ms")
    assert code == 0 and "verdict: PASSED" in out


def test_require_trustworthy_fails_a_saturated_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_summary(tmp_path, make_summary(harness={"trustworthy": False, "reasons": ["cpu pinned"]}))
    code, out, _ = gate(capsys, str(path), "--gate", "p99<50ms", "--require-trustworthy")
    assert code == 1 and "FAIL  harness not trustworthy: cpu pinned" in out


def _junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()  # well-formed XML or this raises
    assert root.tag == "testsuites"
    return root


@pytest.mark.parametrize(
    ("exprs", "tests", "failures"),
    [(["p99<50ms"], 1, 0), (["p99<50ms", "loss==0"], 2, 1), (["p50<1ms", "loss==0", "dup==0"], 3, 2)],
)
def test_junit_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exprs: list[str], tests: int, failures: int
) -> None:
    path = write_summary(tmp_path, make_summary())
    out_xml = tmp_path / "ci" / "rtbench.xml"
    code, _, _ = gate(capsys, str(path), *[a for e in exprs for a in ("--gate", e)], "--junit", str(out_xml))
    assert code == (1 if failures else 0)
    root = _junit(out_xml)
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == exprs
    assert len([c for c in cases if c.find("failure") is not None]) == failures
    for element in (root, suite):
        assert element.get("tests") == str(tests) and element.get("failures") == str(failures)
        assert element.get("errors") == "0"
    assert suite.get("name") == "rtbench.socketio"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["provider"] == "socketio" and props["p99_ms"] == "49"
    failed = [c for c in cases if c.find("failure") is not None]
    for case in failed:
        failure = case.find("failure")
        assert failure is not None and "measured" in (failure.get("message") or "")


def test_junit_with_require_trustworthy_adds_a_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_summary(tmp_path, make_summary(harness={"trustworthy": False, "reasons": ["lag"]}))
    out_xml = tmp_path / "j.xml"
    gate(capsys, str(path), "--gate", "p99<50ms", "--require-trustworthy", "--junit", str(out_xml))
    suite = _junit(out_xml).findall("testsuite")[0]
    assert suite.get("tests") == "2" and suite.get("failures") == "1"


def test_github_step_summary_gets_a_markdown_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    path = write_summary(tmp_path, make_summary())
    gate(capsys, str(path), "--gate", "p99<50ms", "--gate", "loss==0", "--quiet")
    text = step.read_text()
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "rtbench gate: socketio" in text and "FAILED" in text
    assert "| gate | measured | result |" in text
    assert "| `p99<50ms` | 49 ms | ✅ pass |" in text
    assert "| `loss==0` | 10 | ❌ FAIL |" in text


def test_quiet_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = write_summary(tmp_path, make_summary())
    assert gate(capsys, str(path), "--gate", "p99<1ms", "--quiet") == (1, "", "")
