"""Every `stellar bench` scenario runs with tiny parameters and prints well-formed JSON, and
appends one row to its results file, so the benchmarks do not rot. No timing is asserted.

Each runs in its own process, as `stellar bench` does: a scenario's stack sets the control
plane's environment, which must not leak into this test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STELLAR = Path(sys.executable).parent / "stellar"

SCENARIOS = [
    pytest.param("coldstart", ["-n", "1"], ["tracing_on", "tracing_off", "bare_interpreter"], id="coldstart"),
    pytest.param("api", ["--clients", "1,2", "--seconds", "0.5", "--servers", "3", "--in-process", "3"],
                 ["deployed", "lifted"], id="api", marks=pytest.mark.broker),
    pytest.param("console", ["--rates", "100", "--viewers", "1", "--seconds", "0.5", "--runtime", "process"],
                 ["runs"], id="console-process", marks=pytest.mark.broker),
    pytest.param("footprint", ["--servers", "0,1", "--seconds", "0.5", "--runtime", "process"],
                 ["agent", "baseline_bare_interpreter"], id="footprint-process", marks=pytest.mark.broker),
    pytest.param("command", ["--starts", "1"], ["api_start_to_running_seen_by_viewer"], id="command",
                 marks=[pytest.mark.broker, pytest.mark.docker]),
]


@pytest.mark.parametrize(("scenario", "args", "keys"), SCENARIOS)
def test_scenario_prints_json_and_records_a_row(scenario: str, args: list[str], keys: list[str], tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("docker_engine")
    results = tmp_path / "benchmarks.md"
    proc = subprocess.run([str(STELLAR), "bench", scenario, *args, "--record-to", str(results)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["scenario"] == scenario
    assert {"cpu", "cores", "memory_gb", "python", "date"} <= set(data["machine"])
    assert set(keys) <= set(data), sorted(data)
    rows = [ln for ln in results.read_text().splitlines() if ln.startswith(f"| {data['machine']['date']} |")]
    assert len(rows) == 1 and f"| {scenario} |" in rows[0]
    if scenario == "console":
        run = data["runs"][0]
        assert run["stellar"]["emitted"] > 0 and run["baseline_broker"]["emitted"] > 0
