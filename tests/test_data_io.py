"""bayling.data.io: outputs appear only when complete; inputs fail with file:line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayling.data.cli import app
from bayling.data.io import DataError, atomic_open, read_records, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def test_an_error_mid_write_leaves_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old complete file\n")

    def records():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(out, records())
    assert out.read_text() == "old complete file\n"  # the previous file is untouched
    assert list(tmp_path.iterdir()) == [out]  # and no temp file is left behind


def test_a_killed_writer_leaves_no_final_file(tmp_path):
    out = tmp_path / "out.jsonl"
    code = (f"import os, signal\nfrom bayling.data.io import atomic_open\n"
            f"with atomic_open({str(out)!r}) as f:\n"
            f"    f.write('{{}}\\n' * 1000); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert proc.returncode == -9
    assert not out.exists()
    assert [p.name.startswith(".out.jsonl.tmp-") for p in tmp_path.iterdir()] == [True]


def test_atomic_open_replaces_only_on_success(tmp_path):
    with atomic_open(tmp_path / "sub" / "x.txt") as f:
        f.write("done\n")
    assert (tmp_path / "sub" / "x.txt").read_text() == "done\n"


def test_read_records_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1]\n{"b": \xff}\n')
    with pytest.raises(DataError, match=r"r.jsonl:3: a line must be a JSON object"):
        list(read_records(path))
    problems: list[str] = []
    assert [o.rsplit(":", 1)[1] for o, _ in read_records(path, "skip", problems.append)] == ["1"]
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["3", "4"]
    assert "invalid UTF-8" in problems[1]


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayling.data.cli", "build", "--corpus", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "o.jsonl")], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "nope" in proc.stderr and len(proc.stderr.splitlines()) == 1
    result = CliRunner().invoke(app, ["build", "--help"])
    assert result.exit_code == 0 and "--shard" in result.output
    for command in ("filter", "mix", "card"):
        assert CliRunner().invoke(app, [command, "--help"]).exit_code == 0
