"""SIGTERM / SIGINT at every phase of `rtseg run`: exit status, time to exit, summary line.

    python benchmarks/signal_exit.py [--out benchmarks/results]

For each signal, the node (`rtseg run --source demo`, the bundled model) is started and
signalled 0.5, 1, 2 and 3 s after its start (importing torch, loading the model, opening the
source, first frames) and once more right after its first mask arrived. Target: exit 0
within 2 s, exactly one summary line, the ipc:// socket file gone (the socket was closed).
Writes results/cpu-signal-exit.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DELAYS = (0.5, 1.0, 2.0, 3.0, "first mask")


def one(sig: signal.Signals, delay) -> dict:
    from rtseg.client import MaskSubscriber

    folder = Path(tempfile.mkdtemp(prefix="rtseg-sig-"))
    endpoint = f"ipc://{folder}/node.sock"
    node = subprocess.Popen([sys.executable, "-m", "rtseg", "run", "--source", "demo",
                             "--bind", endpoint], stderr=subprocess.PIPE, text=True)
    if delay == "first mask":
        with MaskSubscriber(endpoint, ["demo/drivable"], timeout_ms=60000) as sub:
            sub.recv()
    else:
        time.sleep(delay)  # the moment of the signal is what is measured
    sent = time.monotonic()
    node.send_signal(sig)
    _, err = node.communicate(timeout=60)
    seconds = time.monotonic() - sent
    summaries = [line for line in err.splitlines()
                 if "stopped by" in line or " published " in line]
    return {"signal": sig.name, "after": delay, "exit": node.returncode,
            "exit_s": round(seconds, 3), "summary_lines": len(summaries),
            "summary": summaries[-1] if summaries else "",
            "socket_closed": not (folder / "node.sock").exists(),
            "ok": node.returncode == 0 and seconds < 2.0 and len(summaries) == 1
            and not (folder / "node.sock").exists()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    rows = [one(sig, delay) for sig in (signal.SIGTERM, signal.SIGINT) for delay in DELAYS]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/signal_exit.py"
    (out / "cpu-signal-exit.json").write_text(json.dumps({"command": command,
                                                          "date": time.strftime("%Y-%m-%d"),
                                                          "runs": rows}, indent=2) + "\n")
    lines = ["# Signals at every phase of `rtseg run --source demo` (CPU)", "",
             f"`{command}` ({time.strftime('%Y-%m-%d')}); target: exit 0 within 2 s, one "
             "summary line, socket closed", "",
             "| signal | sent after | exit | time to exit | socket closed | summary line |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        after = r["after"] if isinstance(r["after"], str) else f"{r['after']:g} s"
        lines.append(f"| {r['signal']} | {after} | {r['exit']} | {r['exit_s']:.2f} s | "
                     f"{'yes' if r['socket_closed'] else 'NO'} | {r['summary']} |")
    lines += ["", f"All within target: {all(r['ok'] for r in rows)}"]
    (out / "cpu-signal-exit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
