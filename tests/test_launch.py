"""`rtseg launch`: real launchers supervising real child processes (no mocks).

Children report their pid through the launcher's own lines (``[launch] NAME: started pid
N``); every wait polls those lines or a process against a deadline. A node child publishes
on an ``ipc://`` endpoint in tmp_path, so no TCP port is raced for.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rtseg.errors import RtsegError
from rtseg.launch import load_launch_file

RTSEG = [sys.executable, "-m", "rtseg"]
REPO = Path(__file__).resolve().parents[1]
STARTED = r"\[launch\] {}: started pid (\d+) \(run {}\)"


class Launcher:
    """`rtseg launch FILE` in a subprocess; its stdout and stderr as one list of lines."""

    def __init__(self, file: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([*RTSEG, "launch", str(file)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._new: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float = 60) -> re.Match:
        """The first line (seen so far or to come) matching `pattern`, within the deadline."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if match := re.search(pattern, line):
                    return match
            seen = len(self.lines)
            try:
                self.lines.append(self._new.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s; "
                                     "output:\n" + "\n".join(self.lines)) from None

    def pid(self, name: str, run: int = 1, timeout_s: float = 60) -> int:
        return int(self.wait_for(STARTED.format(re.escape(name), run), timeout_s).group(1))

    def finish(self, timeout_s: float = 60) -> int:
        """Wait for the launcher to exit and its output to end; its exit status."""
        code = self.proc.wait(timeout=timeout_s)
        self.wait_for(r"^rtseg", 10)  # the summary or error line is the last
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def write(tmp_path: Path, text: str, name: str = "launch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def py(code: str) -> str:
    """A TOML command array running `code` in this Python."""
    return f'["{sys.executable}", "-c", "{code}"]'


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_max_retries_is_honoured_and_exit_0_is_reported(tmp_path):
    file = write(tmp_path, f"""
[[process]]
name = "hello"
command = {py("print('hi there')")}

[[process]]
name = "fail"
command = {py("import sys; sys.exit(3)")}
respawn = true
respawn_delay = 0.1
max_retries = 2
""")
    launcher = Launcher(file)
    try:
        code = launcher.finish()
    finally:
        launcher.stop()
    out = "\n".join(launcher.lines)
    assert code == 1, out
    assert "[hello] hi there" in out and "hello: exited with status 0 (run 1)" in out
    starts = [line for line in launcher.lines if re.search(r"fail: started pid \d+", line)]
    assert len(starts) == 3, out
    errors = [line for line in launcher.lines if line.startswith("rtseg: error:")]
    assert len(errors) == 1 and "'fail'" in errors[0] and "status 3" in errors[0], out
    assert "max_retries = 2" in errors[0]


def test_a_required_process_ends_the_launch_when_it_ends(tmp_path):
    """ROS 1's required: its exit with status 0 stops the others and the launch exits 0;
    with another status the launch exits 1 naming it."""
    for status, expected in ((0, 0), (4, 1)):
        file = write(tmp_path, f"""
grace_period = 5

[[process]]
name = "sleeper"
command = {py("import time; time.sleep(600)")}

[[process]]
name = "done"
command = {py(f"import sys; print('finished'); sys.exit({status})")}
required = true
""")
        launcher = Launcher(file)
        try:
            sleeper = launcher.pid("sleeper")
            code = launcher.finish()
        finally:
            launcher.stop()
        out = "\n".join(launcher.lines)
        assert code == expected and "[done] finished" in out, out
        assert "sleeper: stopped, exited with status" in out or (
            "sleeper: stopped, killed by SIGTERM" in out), out
        assert_gone(sleeper)
        last = launcher.lines[-1]
        if status == 0:
            assert last == ("rtseg launch: done (required) exited with status 0; stopped "
                            "sleeper"), out
        else:
            assert last.startswith("rtseg: error:") and "'done' exited with status 4" in last


def test_the_bundled_record_file_ends_after_its_seconds(tmp_path):
    """launch/record.toml seconds:=3: the node starts, the recorder records 3 s of masks
    and status and, being required, ends the launch with exit status 0."""
    from mcap.reader import make_reader

    out = tmp_path / "drive.mcap"
    done = subprocess.run([*RTSEG, "launch", str(REPO / "launch" / "record.toml"),
                           f"bind:=ipc://{tmp_path}/node.sock", f"out:={out}", "seconds:=3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1].startswith(
        "rtseg launch: record (required) exited with status 0; stopped node"), done.stderr
    with out.open("rb") as stream:
        topics = {channel.topic for _, channel, _ in make_reader(stream).iter_messages()}
    assert {"/demo/drivable", "/demo/classes"} <= topics, topics


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def test_log_dir_keeps_every_line_per_launch_and_per_process(tmp_path):
    """--log-dir (and RTSEG_LOG_DIR): a new folder per launch with `latest` pointing at it,
    launch.log with every line, NAME.log with a process's lines over its runs and the
    launcher's lines about it, each stamped; the console shows the same lines."""
    file = write(tmp_path, f"""
[[process]]
name = "talker"
command = {py("import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(2)")}
respawn = true
respawn_delay = 0.1
max_retries = 1
""")
    logs = tmp_path / "logs"
    done = subprocess.run([*RTSEG, "launch", str(file), "--log-dir", str(logs)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.count("[talker] to stdout") == 2, done
    first = (logs / "latest").resolve()
    assert first.parent == logs.resolve()
    assert re.fullmatch(r"\d{4}(-\d\d){5}-\d+", first.name), first.name
    launch_log = (first / "launch.log").read_text().splitlines()
    assert all(re.match(STAMP + r" \[(launch|talker)\] ", line) for line in launch_log)
    assert launch_log[0].endswith(f"[launch] logging to {logs / first.name}"), launch_log
    assert launch_log[-1].endswith(f"[launch] rtseg: error: {file}: process 'talker' exited "
                                   "with status 2 after 2 runs (max_retries = 1); stopped "
                                   "the launch")
    own = [line[24:] for line in (first / "talker.log").read_text().splitlines()]
    assert own[0].startswith("[launch] talker: started pid") and own[-1] == (
        "[launch] talker: exited with status 2 (run 2)")
    assert own.count("to stdout") == own.count("to stderr") == 2, own
    assert "[launch] talker: started pid" in done.stderr  # the console unchanged

    again = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "RTSEG_LOG_DIR": str(logs)})
    assert again.returncode == 1
    second = (logs / "latest").resolve()
    assert second != first and (second / "talker.log").is_file()
    assert sorted(p.name for p in logs.iterdir()) == sorted([first.name, second.name, "latest"])


def test_output_log_keeps_a_process_off_the_console(tmp_path):
    """output = "log" (ROS 2's output='log'): its lines only in --log-dir's files; without
    --log-dir the launcher says they are not kept."""
    file = write(tmp_path, f"""
[[process]]
name = "quiet"
command = {py("import sys; print('hidden line'); print('hidden error', file=sys.stderr)")}
output = "log"

[[process]]
name = "loud"
command = {py("print('shown line')")}
""")
    logs = tmp_path / "logs"
    done = subprocess.run([*RTSEG, "launch", str(file), "--log-dir", str(logs)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "[loud] shown line" in done.stdout and "[quiet]" not in done.stdout + done.stderr
    assert "[launch] quiet: exited with status 0" in done.stderr
    own = (logs / "latest" / "quiet.log").read_text()
    assert "hidden line" in own and "hidden error" in own
    assert "[quiet] hidden line" in (logs / "latest" / "launch.log").read_text()
    bare = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                          timeout=60)
    assert bare.returncode == 0 and "[quiet]" not in bare.stdout + bare.stderr
    assert ('[launch] quiet: output = "log" and no --log-dir: its lines are not kept'
            in bare.stderr.splitlines()), bare.stderr


def test_a_log_dir_that_cannot_be_written_starts_nothing(tmp_path):
    marker = tmp_path / "ran"
    code = f"open('{marker}', 'w')"
    file = write(tmp_path, f'[[process]]\nname = "x"\ncommand = {py(code)}\n')
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run([*RTSEG, "launch", str(file), "--log-dir", str(blocker / "logs")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and not marker.exists()
    assert done.stderr.splitlines() == [
        f"rtseg: error: --log-dir {blocker / 'logs'}: cannot write a log folder there (Not a "
        "directory); give a folder you may write in"], done.stderr


COMMAND_MISTAKES = {  # click's own words in between may change with its version
    "option": (["run", "--sorce", "demo"], "rtseg run: ", "--sorce", "`rtseg run --help`"),
    "value": (["bench", "--seconds", "ten"], "rtseg bench: ", "'ten'", "`rtseg bench --help`"),
    "command": (["rn"], "rtseg rn: no such command; the commands are adjust, bench, ", "run",
                "serve, train, view"),
    "argument": (["compile"], "rtseg compile: ", "CHECKPOINT", "`rtseg compile --help`"),
}


@pytest.mark.parametrize("case", COMMAND_MISTAKES)
def test_a_mistyped_rtseg_command_is_caught_before_anything_starts(tmp_path, case):
    """The launcher parses each `rtseg ...` command as its process would: a respawning node
    with a typo would otherwise print its usage error forever."""
    args, start, inside, end = COMMAND_MISTAKES[case]
    marker = tmp_path / "ran"
    code = f"open('{marker}', 'w')"
    file = write(tmp_path, f'[[process]]\nname = "first"\ncommand = {py(code)}\n\n'
                 f'[[process]]\nname = "node"\ncommand = {json.dumps(["rtseg", *args])}\n'
                 "respawn = true\n")
    for check in ([], ["--check"]):
        done = subprocess.run([*RTSEG, "launch", str(file), *check], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1 and done.stdout == "", done
        line = done.stderr.rstrip("\n")
        assert "\n" not in line and line.startswith(
            f'rtseg: error: {file}:5: [[process]] "node": {start}'), line
        assert inside in line and line.endswith(end), line
    assert not marker.exists()


def test_commands_are_parsed_in_their_working_folder(tmp_path):
    """`--calib DIR` must exist: relative to the process's cwd, as the process sees it;
    the bundled launch files all parse."""
    from rtseg.cli import main
    from rtseg.cli_support import check_rtseg_commands

    (tmp_path / "work" / "frames").mkdir(parents=True)
    text = ('[[process]]\nname = "c"\ncommand = ["rtseg", "run", "--source", "demo", '
            '"--calib", "frames"]\n')
    check_rtseg_commands(load_launch_file(write(tmp_path, text + 'cwd = "work"\n')), main)
    with pytest.raises(RtsegError, match=r"--calib.*'frames' does not exist"):
        check_rtseg_commands(load_launch_file(write(tmp_path, text)), main)
    for file in (REPO / "launch").glob("*.toml"):
        check_rtseg_commands(load_launch_file(file), main)


class Health:
    """An HTTP server on a port this test holds: /healthz answers 503 (loading) to its
    first `loading` requests, then 200, noting when it first said 200."""

    def __init__(self, loading: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        health = self
        self.loading, self.asked, self.ready_at = loading, 0, None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                health.asked += 1
                ok = health.asked > health.loading
                if ok and health.ready_at is None:
                    health.ready_at = time.time()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("on", ["topic", "url"])
def test_a_process_that_never_gets_ready_ends_the_launch(tmp_path, on):
    """No message on its `ready` topic, or its `ready` URL never answering 200 (always a
    503 here), within ready_timeout: the launch ends with exit 1, naming it."""
    health = Health(loading=10**9) if on == "url" else None
    ready = (f'ready = "{health.url}"' if health else
             f'ready = "mute/status"\nendpoint = "ipc://{tmp_path}/nobody.sock"')
    file = write(tmp_path, f"""
grace_period = 1

[[process]]
name = "mute"
command = {py("import time; time.sleep(600)")}
{ready}
ready_timeout = 1

[[process]]
name = "after"
command = {py("print('started too early')")}
""")
    launcher = Launcher(file)
    try:
        mute = launcher.pid("mute")
        assert launcher.finish() == 1
    finally:
        launcher.stop()
        if health:
            health.close()
    out = "\n".join(launcher.lines)
    assert "rtseg: error:" in out and "'mute'" in out, out
    assert (f"{health.url} did not answer 200" if health else "mute/status") in out, out
    assert "started too early" not in out and "after: started" not in out
    assert_gone(mute)


@pytest.mark.slow
def test_killed_node_respawns_and_sigterm_leaves_no_child(tmp_path):
    """A real node child, SIGKILLed, comes back and masks flow again; SIGTERM to the
    launcher then stops it, and a child that ignores SIGTERM, within 5 s, exit 0."""
    from rtseg.client import MaskSubscriber

    endpoint = f"ipc://{tmp_path}/node.sock"
    file = write(tmp_path, f"""
grace_period = 2

[[process]]
name = "stubborn"
command = {py("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print('ignoring SIGTERM'); time.sleep(600)")}

[[process]]
name = "node"
command = ["rtseg", "run", "--source", "demo", "--demo-size", "96x128", "--device", "cpu",
           "--bind", "{endpoint}"]
respawn = true
respawn_delay = 0.5
ready = "demo/drivable"
endpoint = "{endpoint}"
ready_timeout = 120
""")
    launcher = Launcher(file)
    try:
        stubborn = launcher.pid("stubborn")
        launcher.wait_for(r"\[stubborn\] ignoring SIGTERM")
        first = launcher.pid("node", 1)
        launcher.wait_for(r"\[launch\] node: ready", 120)
        os.kill(first, signal.SIGKILL)
        launcher.wait_for(r"node: killed by SIGKILL \(run 1\); respawning in 0.5 s")
        second = launcher.pid("node", 2)
        with MaskSubscriber(endpoint, ["demo/drivable"], timeout_ms=120000) as sub:
            header, mask = sub.recv()  # a fresh subscriber: only the new node can send
        assert mask.shape == (96, 128) and header.topic == "demo/drivable"
        sent = time.monotonic()
        launcher.proc.send_signal(signal.SIGTERM)
        code = launcher.finish(timeout_s=30)
        seconds = time.monotonic() - sent
    finally:
        launcher.stop()
    out = "\n".join(launcher.lines)
    assert code == 0 and seconds < 5, f"exit {code} after {seconds:.1f} s:\n{out}"
    assert "stubborn: stopped, killed by SIGKILL after SIGTERM" in out, out
    assert "rtseg launch: stopped by SIGTERM" in out
    for pid in (stubborn, first, second):
        assert_gone(pid)


def test_each_process_may_have_its_own_grace_period(tmp_path):
    """The file's grace_period is short; a process that cleans up slowly on SIGTERM has a
    longer one of its own and ends by itself, one that ignores SIGTERM has its own and is
    killed, one without its own gets the file's and is killed."""
    def arm(on_term: str) -> str:
        code = ("import signal, sys, time\n"
                f"def handler(*_):\n    {on_term}\n"
                "signal.signal(signal.SIGTERM, handler)\nprint('armed', flush=True)\n"
                "while True: time.sleep(1)")
        return py(code.replace("\n", "\\n"))  # TOML escapes in the command's string
    file = write(tmp_path, f"""
grace_period = 0.2

[[process]]
name = "patient"
command = {arm("time.sleep(1.5); print('cleaned up', flush=True); sys.exit(0)")}
grace_period = 60

[[process]]
name = "stubborn"
command = {arm("pass")}
grace_period = 1

[[process]]
name = "plain"
command = {arm("pass")}
""")
    assert "patient: " in (check := load_launch_file(file).describe())
    assert "SIGKILL 60 s after SIGTERM" in check and "SIGKILL 1 s after SIGTERM" in check
    launcher = Launcher(file)
    try:
        pids = [launcher.pid(name) for name in ("patient", "stubborn", "plain")]
        for name in ("patient", "stubborn", "plain"):
            launcher.wait_for(rf"\[{name}\] armed")
        launcher.proc.send_signal(signal.SIGINT)
        code = launcher.finish(timeout_s=60)
    finally:
        launcher.stop()
    out = "\n".join(launcher.lines)
    assert code == 0, out
    assert "[patient] cleaned up" in out and "patient: stopped, exited with status 0" in out
    assert "stubborn: stopped, killed by SIGKILL after SIGTERM" in out, out
    assert "plain: stopped, killed by SIGKILL after SIGTERM" in out, out
    for pid in pids:
        assert_gone(pid)


BAD_FILES = {
    "syntax": ('[[process]]\nname = "x"\ncommand = ["true"\nrespawn = true\n', 4, "TOML"),
    "unknown key": ('grace_period = 1\n\n[[process]]\nname = "x"\ncommand = ["true"]\n'
                    'respwan = true\n', 6, "respwan"),
    "missing command": ('[[process]]\nname = "a"\ncommand = ["true"]\n\n[[process]]\n'
                        'name = "b"\nrespawn = true\n', 5, "no command"),
    "wrong type": ('[[process]]\nname = "x"\ncommand = ["true"]\nmax_retries = "3"\n', 4,
                   "max_retries"),
    "env value": ('[[process]]\nname = "x"\ncommand = ["true"]\nenv = { A = 1 }\n', 4, "env"),
    "duplicate name": ('[[process]]\nname = "x"\ncommand = ["true"]\n\n[[process]]\n'
                       'name = "x"\ncommand = ["true"]\n', 5, "unique"),
    "top-level key": ('grace = 2\n[[process]]\nname = "x"\ncommand = ["true"]\n', 1, "grace"),
    "no process": ("grace_period = 2\n", 1, "[[process]]"),
    "output": ('[[process]]\nname = "x"\ncommand = ["true"]\noutput = "file"\n', 4,
               'output must be "screen"'),
    "launcher's name": ('[[process]]\nname = "launch"\ncommand = ["true"]\n', 2,
                        "must not be 'launch'"),
    "process grace": ('[[process]]\nname = "x"\ncommand = ["true"]\ngrace_period = -1\n', 4,
                      "grace_period must be a number of seconds >= 0"),
    "required respawn": ('[[process]]\nname = "x"\ncommand = ["true"]\nrespawn = true\n'
                         "required = true\n", 5, "required and respawn exclude each other"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_names_the_line(tmp_path, case):
    text, line, word = BAD_FILES[case]
    file = write(tmp_path, text)
    with pytest.raises(RtsegError) as caught:
        load_launch_file(file)
    message = str(caught.value)
    assert message.startswith(f"{file}:{line}: ") and word in message, message
    assert "\n" not in message


def test_bad_file_is_one_line_and_starts_nothing(tmp_path):
    marker = tmp_path / "ran"
    file = write(tmp_path, f"""
[[process]]
name = "first"
command = {py(f"open('{marker}', 'w')")}

[[process]]
name = "second"
command = ["true"]
max_retries = -2
""")
    done = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"rtseg: error: {file}:9: [[process]] \"second\": max_retries must be an integer "
        ">= 0, or -1 for forever, not -2"], done.stderr
    assert not marker.exists() and done.stdout == ""


def test_the_bundled_launch_files_parse():
    launch = Path(__file__).resolve().parents[1] / "launch"
    names = {file.name: load_launch_file(file) for file in launch.glob("*.toml")}
    assert {"demo.toml", "two_cameras.toml", "record.toml", "foxglove.toml"} <= set(names)
    assert [proc.name for proc in names["foxglove.toml"].processes] == ["node", "foxglove"]
    demo = names["demo.toml"]
    assert [proc.name for proc in demo.processes] == ["node", "view", "echo"]
    assert "--image-topic" in demo.processes[0].command  # the viewer shows the frames
    assert demo.processes[0].respawn and demo.processes[0].ready == "demo/drivable"
    assert demo.processes[0].argv()[:4] == [*RTSEG, "run"]


CURVE_PUBLISHER = (
    "import time, numpy as np; from rtseg.stream.publisher import MaskPublisher; "
    "pub = MaskPublisher('{endpoint}', curve_secret='keys/node.key_secret', "
    "curve_clients='admitted').__enter__(); "
    "[(pub.publish('cam/drivable', 'drivable', np.ones((4, 6), np.uint8), seq=i, stamp_ns=1, "
    "frame_id='f', classes=['not_drivable', 'drivable'], model='m'), time.sleep(0.05)) "
    "for i in range(100000)]")


@pytest.mark.parametrize("keyed", [True, False])
def test_ready_on_a_curve_node_takes_key_files(tmp_path, keyed):
    """A CURVE node that admits listed clients: `ready` gets through with the key files
    (relative to the process's folder, as its own are), and without them times out."""
    from rtseg.curve import write_keys

    work = tmp_path / "work"
    write_keys(work / "keys", "node")
    launch_pub, _ = write_keys(work / "keys", "launch")
    (work / "admitted").mkdir()
    (work / "admitted" / "launch.key").write_bytes(launch_pub.read_bytes())
    code = CURVE_PUBLISHER.format(endpoint=f"ipc://{tmp_path}/curve.sock")
    keys = ('ready_curve_server_key = "keys/node.key"\n'
            'ready_curve_secret = "keys/launch.key_secret"') if keyed else ""
    file = write(tmp_path, f"""
grace_period = 1

[[process]]
name = "node"
command = {py(code)}
cwd = "work"
ready = "cam/drivable"
endpoint = "ipc://{tmp_path}/curve.sock"
ready_timeout = {30 if keyed else 3}
{keys}

[[process]]
name = "after"
command = {py("print('after the node')")}
""")
    launcher = Launcher(file)
    try:
        if keyed:
            launcher.wait_for(r"\[after\] after the node", 60)
            launcher.proc.send_signal(signal.SIGTERM)
        code = launcher.finish()
    finally:
        launcher.stop()
    out = "\n".join(launcher.lines)
    assert code == (0 if keyed else 1), out
    assert ("node: ready" in out) == keyed, out


def test_ready_on_an_http_url_waits_for_a_200(tmp_path):
    """`ready = "http://..."` (rtseg serve's /healthz): the next process starts once the
    URL answers 200, not while it answers 503 (loading)."""
    health = Health(loading=3)
    started = tmp_path / "started"
    file = write(tmp_path, f"""
[[process]]
name = "server"
command = {py("import time; time.sleep(600)")}
ready = "{health.url}"
ready_timeout = 60

[[process]]
name = "client"
command = {py(f"import time; open(r'{started}', 'w').write(repr(time.time()))")}
required = true
""")
    launcher = Launcher(file)
    try:
        launcher.wait_for(r"\[launch\] server: ready \(" + re.escape(health.url)
                          + r" answered 200 after")
        assert launcher.finish() == 0
    finally:
        launcher.stop()
        health.close()
    assert health.asked >= 4 and health.ready_at is not None
    assert float(started.read_text()) >= health.ready_at
