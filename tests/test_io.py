"""bayling.io: the one home of atomic writes."""

from __future__ import annotations

import json

import pytest

from bayling.io import atomic_dir, atomic_path, atomic_write_json, temp_path, write_jsonl


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
