"""`rtseg echo --json`: one JSON object per message or rate report, over real sockets."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from rtseg.echo import echo
from rtseg.status import SourceStatus
from tests.test_client import publishing, send_both, send_drivable

SOURCE = SourceStatus(name="cam0", state="ok", fps=29.5, dropped=3, last_seq=41)


def test_masks_as_json():
    """The 8x4 drivable mask is 25 % drivable; the class map has 16 road, 8 car and 8
    no-prediction pixels (tests.test_client's messages)."""
    out = io.StringIO()
    with publishing(send_both) as endpoint:
        n = echo(endpoint, ["cam0/drivable", "cam0/classes"], as_json=True, count=6,
                 timeout_s=5, out=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == 6 and len(rows) == 6
    drivable = [r for r in rows if r["kind"] == "drivable"]
    classes = [r for r in rows if r["kind"] == "classes"]
    assert drivable and classes
    for row in drivable:
        assert row["topic"] == "cam0/drivable" and row["encoding"] == "bits"
        assert (row["width"], row["height"], row["drivable_fraction"]) == (8, 4, 0.25)
        assert row["latency_ms"] == {"total": 12.5} and row["age_ms"] >= 0
        assert row["model"] == "test@0000" and row["frame_id"] == "camera0"
    for row in classes:
        assert row["pixels"] == {"road": 16, "car": 8} and row["no_prediction"] == 8
    assert all(isinstance(r["seq"], int) and isinstance(r["stamp_ns"], int) for r in rows)


def test_status_and_rates_as_json():
    def send_status(pub, seq: int) -> None:
        pub.publish_status("cam0", "running", [SOURCE])
        send_drivable(pub, seq)

    out = io.StringIO()
    with publishing(send_status) as endpoint:
        echo(endpoint, ["cam0/status"], as_json=True, count=2, timeout_s=5, out=out)
        rates = io.StringIO()
        echo(endpoint, ["cam0/drivable"], hz=True, as_json=True, count=60, timeout_s=5,
             out=rates)
    status = json.loads(out.getvalue().splitlines()[0])
    assert status["kind"] == "status" and status["node"] == "cam0"
    assert status["state"] == "running" and status["sources"] == [
        {"name": "cam0", "state": "ok", "fps": 29.5, "dropped": 3, "last_seq": 41}]
    reports = [json.loads(line) for line in rates.getvalue().splitlines()]
    assert reports and sum(r["messages"] for r in reports) == 60
    for report in reports:
        assert report["topic"] == "cam0/drivable"
        if report["rate_hz"] is not None:
            assert report["rate_hz"] > 0
            period = report["period_ms"]
            assert 0 < period["min"] <= period["mean"] <= period["max"]


def test_the_cli_flag_prints_json_lines():
    with publishing(send_drivable) as endpoint:
        done = subprocess.run([sys.executable, "-m", "rtseg", "echo", endpoint,
                               "cam0/drivable", "--json", "--count", "3", "--timeout", "10"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 3 and all(r["drivable_fraction"] == 0.25 for r in rows)
