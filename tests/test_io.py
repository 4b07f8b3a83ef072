"""bayling.io: the one home of atomic writes."""

from __future__ import annotations

import json

import pytest

from bayling.io import append_jsonl, atomic_dir, atomic_path, atomic_write_json, temp_path, write_jsonl


def test_temp_names_are_hidden_beside_the_target_and_unique(tmp_path):
    a, b = temp_path(tmp_path / "x.json"), temp_path(tmp_path / "x.json")
    assert a != b and a.parent == tmp_path and a.name.startswith(".x.json.tmp-")


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert write_jsonl(target, [{"a": 1}, {"b": "ü"}]) == 2
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "ü"}\n'


def test_atomic_dir_replaces_a_folder_whole(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as d:
        (d / "old.txt").write_text("old")
    with pytest.raises(ValueError):
        with atomic_dir(out) as d:
            (d / "new.txt").write_text("new")
            raise ValueError("conversion failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with atomic_dir(out) as d:
        (d / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_appends_start_on_a_new_line_after_a_torn_one(tmp_path):
    path = tmp_path / "cache.jsonl"
    assert append_jsonl(path, [{"a": 1}]) == 1
    with path.open("a", encoding="utf-8") as f:
        f.write('{"b": "to')  # a kill mid-write
    assert append_jsonl(path, [{"c": "ü"}, {"d": 4}]) == 2 and append_jsonl(path, []) == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == ['{"a": 1}', '{"b": "to', '{"c": "ü"}', '{"d": 4}']


def test_writes_remove_the_temp_files_of_killed_runs_but_not_of_live_ones(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a process that has ended: its temps are stale
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [tmp_path / f".convs.jsonl.tmp-{dead}-0badf00d", tmp_path / f".model.tmp-{dead}-0badf00d"]
        kept = [tmp_path / f".convs.jsonl.tmp-{live.pid}-12345678", tmp_path / f".convs.jsonl.tmp-{os.getpid()}-1",
                tmp_path / f".other.jsonl.tmp-{dead}-0badf00d",  # another target's: not this write's business
                tmp_path / ".convs.jsonl.tmp-x-1", tmp_path / f"convs.jsonl.tmp-{dead}-1"]  # not temp_path's names
        stale[0].write_text("half")
        stale[1].mkdir()
        (stale[1] / "weights.bin").write_text("half")
        for p in kept:
            p.write_text("in use")
        write_jsonl(tmp_path / "convs.jsonl", [{"a": 1}])
        assert not stale[0].exists() and stale[1].exists()
        with atomic_dir(tmp_path / "model") as d:
            (d / "weights.bin").write_text("whole")
        assert not stale[1].exists() and all(p.exists() for p in kept)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in kept), "convs.jsonl", "model"])
    finally:
        live.kill()
        live.wait()
