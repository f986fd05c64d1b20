import pytest

from rtseg.files import atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    with atomic_write(path, "w") as fh:
        fh.write("old\n")
    with atomic_write(path) as fh:
        fh.write(b"new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
