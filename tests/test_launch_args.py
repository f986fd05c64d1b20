"""Launch arguments of `rtseg launch` (``[arg]``, ``NAME:=VALUE``, ``$(var)``, ``$(env)``,
``$(dirname)``, ``if`` / ``unless``): files read as the launcher reads them, and a real
launcher whose children write what they were given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtseg.errors import RtsegError
from rtseg.launch import load_launch_file

RTSEG = [sys.executable, "-m", "rtseg"]
REPO = Path(__file__).resolve().parents[1]

FILE = """\
[arg]
source = "demo"
bind = { default = "tcp://127.0.0.1:5555", description = "where the node publishes" }
camera = { description = "a camera file" }
engine = { default = "auto", choices = ["auto", "onnx"] }
viewer = "false"

[[process]]
name = "node"
command = ["rtseg", "run", "--source", "$(var source)", "--camera", "$(dirname)/$(var camera)",
           "--engine", "$(var engine)", "--home", "$(env RTSEG_TEST_HOME)",
           "--user", "$(env RTSEG_TEST_UNSET nobody)", "echo $$(date) $$(var source)"]
ready = "$(var source)/drivable"
endpoint = "$(var bind)"
env = { WHERE = "$(var bind)" }

[[process]]
name = "view"
command = ["rtseg", "view", "$(var bind)"]
if = "$(var viewer)"

[[process]]
name = "echo"
command = ["rtseg", "echo", "$(var bind)"]
unless = "$(var viewer)"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "launch.toml"
    path.write_text(text)
    return path


def test_arguments_fill_every_string_defaults_and_given(tmp_path, monkeypatch):
    monkeypatch.setenv("RTSEG_TEST_HOME", "/home/robot")
    monkeypatch.delenv("RTSEG_TEST_UNSET", raising=False)
    file = write(tmp_path, FILE)
    spec = load_launch_file(file, ["camera:=front.toml"])
    node = spec.processes[0]
    assert node.command == ("rtseg", "run", "--source", "demo", "--camera",
                            f"{tmp_path.resolve()}/front.toml", "--engine", "auto",
                            "--home", "/home/robot", "--user", "nobody",
                            "echo $(date) $(var source)")
    assert (node.ready, node.endpoint) == ("demo/drivable", "tcp://127.0.0.1:5555")
    assert node.env == (("WHERE", "tcp://127.0.0.1:5555"),)
    assert [p.name for p in spec.processes] == ["node", "echo"] and spec.skipped == ("view",)

    spec = load_launch_file(file, ["camera:=c.toml", "source:=camera0", "viewer:=True",
                                   "bind:=ipc:///tmp/x", "engine:=onnx"])
    assert [p.name for p in spec.processes] == ["node", "view"]
    assert spec.processes[0].ready == "camera0/drivable"
    assert spec.processes[1].command == ("rtseg", "view", "ipc:///tmp/x")
    assert spec.describe().splitlines()[0] == (
        "arguments: source:=camera0 bind:=ipc:///tmp/x camera:=c.toml engine:=onnx viewer:=True")
    assert spec.describe().splitlines()[-1] == "echo: not started (if / unless)"


GIVEN = {
    "missing required": ([], "'camera' has no default: give it, e.g. camera:=VALUE (a camera"),
    "undeclared": (["camera:=c", "sorce:=camera0"], "no launch argument 'sorce' in this file; "
                   "it declares source, bind, camera, engine, viewer"),
    "not a choice": (["camera:=c", "engine:=trt"],
                     "'engine' is 'trt'; it must be one of auto, onnx"),
    "no :=": (["camera:=c", "source=camera0"], "NAME:=VALUE, e.g. source:=camera0; not 'source"),
    "twice": (["camera:=c", "camera:=d"], "'camera' is given twice"),
}


@pytest.mark.parametrize("case", GIVEN)
def test_a_wrong_command_line_names_the_argument(tmp_path, case):
    given, words = GIVEN[case]
    file = write(tmp_path, FILE)
    with pytest.raises(RtsegError) as caught:
        load_launch_file(file, given)
    message = str(caught.value)
    assert message.startswith(f"{file}: ") and words in message, message
    assert message.endswith("--show-args`") and "\n" not in message


PROCESS = '[[process]]\nname = "x"\ncommand = ["true", {}]\n'
BAD = {
    "undeclared var": ('[arg]\na = "1"\n\n' + PROCESS.format('"$(var b)"'), 6,
                       "command: $(var b): no launch argument 'b'; declare it"),
    "unknown substitution": (PROCESS.format('"$(find-pkg-share rtseg)"'), 3,
                             "unknown substitution '$(find-pkg-share rtseg)'; known: $(var"),
    "unclosed": (PROCESS.format('"$(var a"'), 3, "unclosed or nested substitution"),
    "escaped, then unknown": (PROCESS.format('"$$(date) $(date)"'), 3,
                              "unknown substitution '$(date)'"),
    "unset env": (PROCESS.format('"$(env RTSEG_TEST_UNSET)"'), 3,
                  "$(env RTSEG_TEST_UNSET): the environment variable is not set"),
    "condition": (PROCESS.format('"y"') + 'if = "maybe"\n', 4, '"x": if must be true or false'),
    "arg key": ('[arg]\na = { default = "1", help = "h" }\n' + PROCESS.format('"y"'), 2,
                "launch argument 'a': unknown key 'help'; known keys: default, description"),
    "arg type": ('grace_period = 1\n[arg]\na = 3\n' + PROCESS.format('"y"'), 3,
                 "launch argument 'a' must be a string (its default) or a table"),
    "all off": ('[arg]\non = "0"\n' + PROCESS.format('"y"') + 'if = "$(var on)"\n', 3,
                "every [[process]] is switched off"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_substitution_names_the_line(tmp_path, case, monkeypatch):
    monkeypatch.delenv("RTSEG_TEST_UNSET", raising=False)
    text, line, words = BAD[case]
    file = write(tmp_path, text)
    with pytest.raises(RtsegError) as caught:
        load_launch_file(file)
    message = str(caught.value)
    assert message.startswith(f"{file}:{line}: ") and words in message, message


def test_a_launch_runs_with_the_values_given(tmp_path):
    """Children write the values they got: the given one, the default, and an `if` / an
    `unless` process started or not by a given "true"."""
    def child(name: str, text: str, condition: str = "") -> str:
        code = f"open('{tmp_path}/{name}', 'w').write('{text}')"
        return (f'[[process]]\nname = "{name}"\ncommand = ["{sys.executable}", "-c", "{code}"]\n'
                + condition)
    file = write(tmp_path, '[arg]\nword = { description = "what to write" }\n'
                 'other = "fallback"\nextra = "false"\n\n'
                 + child("given", "$(var word)") + child("default", "$(var other)")
                 + child("when", "on", 'if = "$(var extra)"\n')
                 + child("otherwise", "off", 'unless = "$(var extra)"\n'))
    done = subprocess.run([*RTSEG, "launch", str(file), "word:=hello world", "extra:=true"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "given").read_text() == "hello world"
    assert (tmp_path / "default").read_text() == "fallback"
    assert (tmp_path / "when").read_text() == "on" and not (tmp_path / "otherwise").exists()

    missing = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"rtseg: error: {file}: launch argument 'word' has no default: give it, e.g. "
        f"word:=VALUE (what to write); see `rtseg launch {file} --show-args`"]

    shown = subprocess.run([*RTSEG, "launch", str(file), "--show-args"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.splitlines() == [
        f"arguments of {file} (give them as NAME:=VALUE):",
        "  word: what to write; required: no default", "  other: default 'fallback'",
        "  extra: default 'false'"]


def test_the_bundled_files_take_their_arguments():
    demo = load_launch_file(REPO / "launch" / "demo.toml",
                            ["source:=camera0", "name:=front", "port:=9090"])
    node, view, echo = demo.processes
    assert node.command[:6] == ("rtseg", "run", "--source", "camera0", "--name", "front")
    assert node.ready == "front/drivable" and view.command[-1] == "9090"
    assert echo.command[-2:] == ("front/drivable", "front/classes")
    fox = load_launch_file(REPO / "launch" / "foxglove.toml")
    camera = Path(fox.processes[1].command[-1])
    assert camera == REPO / "launch" / "cameras" / "demo.toml" and camera.is_file()
    record = load_launch_file(REPO / "launch" / "record.toml", ["out:=drive.mcap"])
    assert record.processes[1].command[-3:] == ("drive.mcap", "--seconds", "inf")
    assert record.processes[1].required and not record.processes[0].required
    cams = load_launch_file(REPO / "launch" / "two_cameras.toml", ["front:=a.mp4"])
    assert cams.processes[0].command[3:8] == ("a.mp4", "--name", "front", "--source", "camera1")


def test_the_surround_file_names_a_rig_of_two_cameras():
    """launch/surround.toml: a node on two sources and the viewer fusing their grids; its
    camera files (beside it, whatever folder it is launched from) share one grid, the
    front camera's ground ahead and the rear's behind, nowhere both."""
    from rtseg.ground_draw import check_cameras

    spec = load_launch_file(REPO / "launch" / "surround.toml")
    node, view = spec.processes
    assert node.command.count("--source") == 2 and node.ready == "rear/drivable"
    assert "--fuse" in view.command
    files = [arg.split("=", 1)[1] for arg in view.command if arg.startswith(("front=", "rear="))]
    assert [Path(f).name for f in files] == ["surround_front.toml", "surround_rear.toml"]
    facts = check_cameras(files)
    own = [facts["cameras"][f]["visible_fraction"] for f in files]
    none, one, both = facts["together"]["seen_by"]
    assert both == 0 and one == pytest.approx(sum(own), abs=1e-3) and one > 0.5
    assert facts["together"]["visible_fraction"] == pytest.approx(1 - none, abs=1e-3)
    given = load_launch_file(REPO / "launch" / "surround.toml",
                             ["front:=camera0", "rear:=camera1", "rear_camera:=r.toml"])
    assert given.processes[0].command[3] == "camera0"
    assert "rear=r.toml" in given.processes[1].command
