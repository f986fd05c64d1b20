"""rtseg.signals: a StopRequested that something swallows is raised again until the
command has it; the cleanup of a stop is never interrupted by its repeats; a stop inside
deferred() (native imports) comes out when the block ends.

Each case (tests/signal_cases.py) runs in a fresh interpreter and sends real signals to
itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("signal_cases.py")


@pytest.mark.parametrize("case", ["swallowed_stop_comes_back", "cleanup_is_not_interrupted",
                                  "loop_gets_the_swallowed_stop",
                                  "nothing_left_after_the_command",
                                  "deferred_stop_waits_for_the_block",
                                  "node_stop_takes_no_lock"])
def test_signal_case(case):
    done = subprocess.run([sys.executable, str(CASES), case], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok"), done.stdout + done.stderr
