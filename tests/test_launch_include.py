"""``[[include]]`` in launch files (ROS 2's IncludeLaunchDescription): another file's
processes started in place, with its own arguments, namespace and folder; files read as the
launcher reads them, and a real launcher whose children write what they were given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtseg.errors import RtsegError
from rtseg.launch import load_launch_file

RTSEG = [sys.executable, "-m", "rtseg"]
REPO = Path(__file__).resolve().parents[1]


def writer(name: str, path: str, text: str, extra: str = "") -> str:
    """A [[process]] that writes `text` to `path` (relative to its working folder)."""
    code = f"open('{path}', 'w').write('{text}')"
    return (f'[[process]]\nname = "{name}"\ncommand = ["{sys.executable}", "-c", "{code}"]\n'
            + extra + "\n")


# the included file: one required argument, one with a default, a process in a cwd of its
# own folder, one switched by an argument; it lives in a sub-folder of the parent's
CAMERA = ('grace_period = 5.0\n[arg]\nside = { description = "which camera" }\nrate = "30"\n'
          'extra = "false"\n\n'
          + writer("writer", "$(dirname)/$(var side).txt", "$(var side) at $(var rate)")
          + writer("here", "here.txt", "$(var side)", 'cwd = "work"')
          + writer("optional", "$(dirname)/optional-$(var side).txt", "on",
                   'if = "$(var extra)"'))

PARENT = ('[arg]\nrear = "true"\n\n'
          + writer("first", "$(dirname)/first.txt", "1")
          + '[[include]]\nfile = "cameras/camera.toml"\nnamespace = "front"\n'
            'args = { side = "front", rate = 15, extra = true }\n\n'
          + '[[include]]\nfile = "$(dirname)/cameras/camera.toml"\nnamespace = "rear"\n'
            'args = { side = "rear" }\nif = "$(var rear)"\n\n'
          + writer("last", "$(dirname)/last.txt", "2"))


def tree(tmp_path: Path, parent: str = PARENT, camera: str = CAMERA) -> Path:
    (tmp_path / "cameras" / "work").mkdir(parents=True)
    (tmp_path / "cameras" / "camera.toml").write_text(camera)
    file = tmp_path / "launch.toml"
    file.write_text(parent)
    return file


def test_included_processes_start_in_place_with_their_arguments(tmp_path):
    file = tree(tmp_path)
    cameras = tmp_path.resolve() / "cameras"
    spec = load_launch_file(file)
    assert [p.name for p in spec.processes] == [
        "first", "front/writer", "front/here", "front/optional", "rear/writer", "rear/here",
        "last"]
    assert spec.skipped == ("rear/optional",) and spec.grace_period == 5.0
    by_name = {p.name: p for p in spec.processes}
    assert by_name["front/writer"].command[-1] == (
        f"open('{cameras}/front.txt', 'w').write('front at 15')")
    assert by_name["rear/writer"].command[-1].endswith(".write('rear at 30')")
    assert by_name["front/here"].cwd == str(cameras / "work")

    off = load_launch_file(file, ["rear:=false"])
    assert [p.name for p in off.processes][-2:] == ["front/optional", "last"]
    assert off.skipped == (f"include {cameras}/camera.toml",)
    assert off.describe().splitlines()[-1].endswith("camera.toml: not started (if / unless)")


def test_a_launch_runs_the_included_processes(tmp_path):
    """The real launcher: every child of both includes ran with its values, in its folder,
    its output lines prefixed with its namespaced name."""
    file = tree(tmp_path)
    done = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    cameras = tmp_path / "cameras"
    assert (cameras / "front.txt").read_text() == "front at 15"
    assert (cameras / "rear.txt").read_text() == "rear at 30"
    assert (cameras / "work" / "here.txt").read_text() in ("front", "rear")
    assert (cameras / "optional-front.txt").read_text() == "on"
    assert not (cameras / "optional-rear.txt").exists()
    assert (tmp_path / "first.txt").read_text() == "1" and (tmp_path / "last.txt").exists()
    out = done.stdout + done.stderr
    for name in ("first", "front/writer", "front/here", "rear/writer", "last"):
        assert f"{name}: started pid" in out, out


INCLUDE = '[[include]]\nfile = "cameras/camera.toml"\n'
BAD = {
    "same names twice": (INCLUDE + 'args = { side = "a" }\n\n' + INCLUDE
                         + 'args = { side = "b" }\n', "launch.toml:5: ",
                         'two processes are named "writer" (the other from line 1): names '
                         "must be unique (they prefix the output lines); give an [[include]] "
                         "a namespace"),
    "argument not declared": (INCLUDE + 'args = { side = "a", sied = "b" }\n', "launch.toml:1: ",
                              "[[include]] cameras/camera.toml: no launch argument 'sied' in "
                              "this file; it declares side, rate, extra"),
    "required argument": (INCLUDE, "launch.toml:1: ", "'side' has no default: give it"),
    "no such file": ('[[include]]\nfile = "camera.toml"\n', "launch.toml:2: ",
                     "[[include]] camera.toml: no such file"),
    "no file key": ('[[include]]\nnamespace = "x"\n', "launch.toml:1: ",
                    '[[include]] #1 has no file: add e.g. file = "$(dirname)/demo.toml"'),
    "unknown key": (INCLUDE + 'arguments = { side = "a" }\n', "launch.toml:3: ",
                    "[[include]] #1: unknown key 'arguments'; known keys: file, args, "
                    "namespace, if, unless"),
    "args type": (INCLUDE + 'args = ["side=a"]\n', "launch.toml:3: ",
                  "[[include]] cameras/camera.toml: args must be a table of launch arguments"),
    "namespace": (INCLUDE + 'args = { side = "a" }\nnamespace = "a b"\n', "launch.toml:4: ",
                  "namespace must be letters, digits"),
    "includes itself": ('[[include]]\nfile = "launch.toml"\n', "launch.toml:1: ",
                        "the files include each other: "),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_include_names_the_file_and_line(tmp_path, case):
    text, where, words = BAD[case]
    file = tree(tmp_path, parent=text)
    with pytest.raises(RtsegError) as caught:
        load_launch_file(file)
    message = str(caught.value)
    assert where in message and words in message, message
    assert message.startswith(str(tmp_path)) and "\n" not in message


def test_a_loop_through_two_files_is_named(tmp_path):
    (tmp_path / "a.toml").write_text('[[include]]\nfile = "b.toml"\n')
    (tmp_path / "b.toml").write_text(writer("x", "x", "x") + '[[include]]\nfile = "a.toml"\n')
    with pytest.raises(RtsegError) as caught:
        load_launch_file(tmp_path / "a.toml")
    loop = [Path(p).name for p in str(caught.value).split(": ")[-1].split(" -> ")]
    assert loop == ["a.toml", "b.toml", "a.toml"], caught.value


def test_the_bundled_demo_included_twice_as_two_cameras(tmp_path):
    """A user's file: launch/demo.toml twice, a front and a rear camera on their own
    endpoints and viewer ports, names kept apart by namespace; `--check` lists them."""
    demo = REPO / "launch" / "demo.toml"
    text = "".join(f'[[include]]\nfile = "{demo}"\nnamespace = "{side}"\n'
                   f'args = {{ source = "camera{i}", name = "{side}", port = {8080 + i}, '
                   f'bind = "tcp://127.0.0.1:{5555 + i}" }}\n\n'
                   for i, side in enumerate(("front", "rear")))
    file = tmp_path / "cameras.toml"
    file.write_text(text)
    spec = load_launch_file(file)
    assert [p.name for p in spec.processes] == [
        "front/node", "front/view", "front/echo", "rear/node", "rear/view", "rear/echo"]
    rear = spec.processes[3]
    assert rear.command[:6] == ("rtseg", "run", "--source", "camera1", "--name", "rear")
    assert rear.ready == "rear/drivable" and rear.endpoint == "tcp://127.0.0.1:5556"
    assert spec.processes[4].command[-1] == "8081"
    shown = subprocess.run([*RTSEG, "launch", str(file), "--check"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert [line.split(":")[0] for line in shown.stdout.splitlines()] == [
        p.name for p in spec.processes]


def test_an_included_command_that_cannot_start_names_its_own_file(tmp_path):
    (tmp_path / "inner").mkdir()
    inner = tmp_path / "inner" / "broken.toml"
    inner.write_text('[[process]]\nname = "ghost"\ncommand = ["rtseg-no-such-program"]\n')
    file = tmp_path / "launch.toml"
    file.write_text('[[include]]\nfile = "inner/broken.toml"\nnamespace = "x"\n')
    done = subprocess.run([*RTSEG, "launch", str(file)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"rtseg: error: {file}: process 'x/ghost' could not start 'rtseg-no-such-program': "
        f"No such file or directory; check its command ({inner.resolve()}:1)"), done.stderr
