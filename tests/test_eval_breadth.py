"""Breadth eval: the same sentences for every system, resume after a kill, off-target against the
references' own rate, the comparison's numbers, and the CLI end to end on the tiny model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayling.eval import breadth
from bayling.eval.breadth import BreadthConfig
from bayling.eval.cli import app
from bayling.languages import resolve
from bayling.resources import sample_dir
from bayling.testing.fake_engine import FakeEngine

LINES = 6  # sentences per direction in these tests


@pytest.fixture(scope="module")
def flores(tmp_path_factory) -> Path:
    """A FLORES layout: three real languages from the shipped sample, one the detector has no label
    for (Acehnese), and 'Italian' whose references are English (the detector rejects them)."""
    root = tmp_path_factory.mktemp("breadth") / "flores200"
    for split in ("dev", "devtest"):
        (root / split).mkdir(parents=True)
        for code in ("eng_Latn", "fra_Latn", "deu_Latn", "zho_Hans"):
            shutil.copy(sample_dir() / split / f"{code}.{split}", root / split / f"{code}.{split}")
        lines = (sample_dir() / split / f"eng_Latn.{split}").read_text(encoding="utf-8").splitlines()
        (root / split / f"ita_Latn.{split}").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
        fra = (sample_dir() / split / f"fra_Latn.{split}").read_text(encoding="utf-8").splitlines()
        (root / split / f"ace_Latn.{split}").write_text("".join(f"{' '.join(reversed(x.split()))}\n" for x in fra),
                                                        encoding="utf-8")
    return root


def _lines(root: Path) -> dict[str, list[str]]:
    return {p.name.split(".")[0]: p.read_text(encoding="utf-8").splitlines() for p in (root / "devtest").iterdir()}


def translator(root: Path, worse: str | None = None, halve: bool = False, seen: list | None = None):
    """A fake system that knows the references: exact (or every other word with `halve`), and for
    `worse` it hands the source back."""
    text = _lines(root)
    line_of = {(s, code): i for code, lines in text.items() for i, s in enumerate(lines)}
    names = {resolve(c).name: c for c in text}

    def reply(target) -> str:
        if isinstance(target, str):  # few-shot: "...\n{src name}: {source}\n{tgt name}:"
            *_, src_line, tgt_line = target.split("\n")
            src_name, source = src_line.split(": ", 1)
            tgt = names[tgt_line.rstrip(":")]
        else:
            m = re.match(r"Translate the following (.+) text into (.+)\.\n\n(.*)", target[-1]["content"], re.DOTALL)
            src_name, tgt, source = m.group(1), names[m.group(2)], m.group(3)
        if seen is not None:
            seen.append((source, tgt))
        src = names[src_name]
        if worse in (src, tgt):
            return source
        out = text[tgt][line_of[(source, src)]]
        return " ".join(out.split()[::2]) if halve else out

    return reply


def _engine(reply, batch: int = 4) -> FakeEngine:
    engine = FakeEngine(reply)
    engine.batch_size = batch  # requests_per_call: the cache is written this many translations at a time
    return engine


def _config(root: Path, out: Path, system: str, **kw) -> BreadthConfig:
    return BreadthConfig(**{"corpus": str(root), "per_direction": LINES, "out": str(out), "system": system,
                            "progress": False, **kw})


def test_every_system_gets_the_same_sentences_and_few_shot_examples_from_dev(flores, tmp_path):
    seen_base, seen_tuned = [], []
    base = breadth.run(_engine(translator(flores, halve=True, seen=seen_base)), _config(flores, tmp_path, "base"))
    tuned = breadth.run(_engine(translator(flores, seen=seen_tuned)), _config(flores, tmp_path, "tuned", prompt="chat"))
    key = [(e["id"], e["src"], e["ref"]) for e in base["examples"]]
    assert key == [(e["id"], e["src"], e["ref"]) for e in tuned["examples"]]
    assert sorted(seen_base) == sorted(seen_tuned) and len(seen_base) == 5 * 2 * LINES
    assert base["languages"] == 5 and len(base["directions"]) == 10
    text = _lines(flores)
    assert [e["src"] for e in base["examples"] if e["direction"] == "eng_Latn-fra_Latn"] == text["eng_Latn"][:LINES]
    assert {e["id"].split(":")[1] for e in base["examples"]} == {str(i) for i in range(1, LINES + 1)}
    # the choice depends on nothing but the corpus and N: picked again, the same
    again, _ = breadth.pick_sentences(_config(flores, tmp_path, "x"))
    assert [(p.src, p.tgt) for p in again] == [(e["src"], e["ref"]) for e in base["examples"]]
    cache = [json.loads(x) for x in (tmp_path / "base.translations.jsonl").read_text(encoding="utf-8").splitlines()]
    dev = (flores / "dev" / "eng_Latn.dev").read_text(encoding="utf-8").splitlines()
    assert len(cache) == 60 and (tmp_path / "base.json").is_file() and (tmp_path / "tuned.json").is_file()
    engine = _engine(translator(flores, halve=True))
    prompts = []
    engine.reply = lambda p: prompts.append(p) or "x"
    breadth.run(engine, _config(flores, tmp_path / "other", "b", langs="fra_Latn"))
    assert all(p.count(dev[0]) == 1 and dev[3] not in p for p in prompts if p.startswith("English: "))  # 3 shots


def test_a_killed_run_resumes_with_identical_results_translating_only_what_was_missing(flores, tmp_path):
    clean = breadth.run(_engine(translator(flores, halve=True)), _config(flores, tmp_path / "clean", "base"))

    class Killed(Exception):
        pass

    calls = {"n": 0}
    fake = _engine(translator(flores, halve=True))
    complete = fake.complete

    def dies_on_the_fourth_call(prompts, config):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed
        return complete(prompts, config)

    fake.complete = dies_on_the_fourth_call
    with pytest.raises(Killed):
        breadth.run(fake, _config(flores, tmp_path / "run", "base"))
    partial = tmp_path / "run" / "base.translations.jsonl.partial.jsonl"
    assert len(partial.read_text(encoding="utf-8").splitlines()) == 12  # three calls of 4
    with open(partial, "ab") as f:  # and a write torn by the kill
        f.write(b'{"id": "eng_Latn-fra_Latn:9", "hyp": "hal')
    fresh = _engine(translator(flores, halve=True))
    resumed = breadth.run(fresh, _config(flores, tmp_path / "run", "base"))
    assert fresh.calls == 60 - 12 and resumed["resumed"] == 12 and resumed["translated"] == 48
    assert [e["hyp"] for e in resumed["examples"]] == [e["hyp"] for e in clean["examples"]]
    assert resumed["directions"] == clean["directions"]
    assert not partial.exists()
    # a run over fewer languages neither retranslates nor forgets the others
    again = _engine(translator(flores, halve=True))
    breadth.run(again, _config(flores, tmp_path / "run", "base", langs="fra_Latn"))
    assert again.calls == 0
    assert len((tmp_path / "run" / "base.translations.jsonl").read_text(encoding="utf-8").splitlines()) == 60
    # other weights (or settings) are not reused
    other = _engine(translator(flores, halve=True))
    breadth.run(other, _config(flores, tmp_path / "run", "base", langs="fra_Latn", weights="sha-other"))
    assert other.calls == 2 * LINES


def test_off_target_is_read_against_the_references_own_rate(flores, tmp_path):
    res = breadth.run(_engine(translator(flores, worse="deu_Latn")), _config(flores, tmp_path, "s", prompt="chat"))
    d = res["directions"]
    assert d["eng_Latn-fra_Latn"]["off_target_rate"] == 0 and d["eng_Latn-fra_Latn"]["ref_off_target_rate"] == 0
    assert d["eng_Latn-fra_Latn"]["counted"] and d["eng_Latn-fra_Latn"]["family"] == "Indo-European"
    assert d["eng_Latn-deu_Latn"]["off_target_rate"] == 1 and d["eng_Latn-deu_Latn"]["counted"]
    assert d["eng_Latn-deu_Latn"]["detected_instead"] == {"eng_Latn": LINES}
    # Acehnese: no detector label; 'Italian' whose references are English: marked, not failures
    assert not d["eng_Latn-ace_Latn"]["counted"] and "no label" in d["eng_Latn-ace_Latn"]["unjudged_reason"]
    assert d["eng_Latn-ita_Latn"]["ref_off_target_rate"] == 1 and not d["eng_Latn-ita_Latn"]["counted"]
    assert "recognises only 0/6" in d["eng_Latn-ita_Latn"]["unjudged_reason"]
    # the detector takes one Chinese reference for Japanese: the exact answer scores the same, the floor
    zh = d["eng_Latn-zho_Hans"]
    assert zh["off_target_rate"] == zh["ref_off_target_rate"] == pytest.approx(1 / 6) and zh["counted"]
    assert res["counted_en_xx"] == 3 and res["off_target_en_xx"] == pytest.approx(7 / 18)
    assert res["ref_off_target_en_xx"] == pytest.approx(1 / 18) and res["chrf_en_xx"] < 100 and res["chrf_xx_en"] < 100
    assert d["eng_Latn-zho_Hans"]["script"] == "Hans" and d["deu_Latn-eng_Latn"]["side"] == "xx-en"
    assert "script" in res["breakdown"] and "family" in res["breakdown"]


def test_comparison_numbers(flores, tmp_path):
    base = breadth.run(_engine(translator(flores, halve=True)), _config(flores, tmp_path, "base"))
    better = breadth.run(_engine(translator(flores, worse="deu_Latn")), _config(flores, tmp_path, "v8", prompt="chat"))
    cmp = breadth.compare(base, better)
    en, xx = cmp["sides"]["en-xx"], cmp["sides"]["xx-en"]
    assert en["delta"] > 10 and en["p_value"] < 0.05 and en["significant"]
    assert xx["delta"] > 10 and xx["p_value"] < 0.05 and xx["significant"]
    # German handed back as the source: both its directions far below the base
    assert en["below_directions"] == ["eng_Latn-deu_Latn"] and xx["below_directions"] == ["deu_Latn-eng_Latn"]
    assert cmp["below"] == 2 and cmp["below_share"] == pytest.approx(0.2)
    assert en["off_target_base"] == base["off_target_en_xx"] < en["off_target_system"] == pytest.approx(7 / 18)
    assert en["counted"] == 3 and en["unjudged"] == {"no detector label": 1, "references not recognised": 1}
    assert cmp["goals"] == {"en_xx_better": True, "xx_en_better": True, "at_most_10pct_below": False,
                            "en_xx_off_target_halved": False}
    assert [r["script"] for r in cmp["rows"]] == ["Latn"] * 4 + ["Hans"]
    block = breadth.summary_block(cmp)
    assert "directions more than 3 chrF below base: 2/10" in block and "FAIL" in block and "PASS" in block
    # a system against itself: no difference, nothing below
    same = breadth.compare(base, base)
    assert same["below"] == 0 and not same["sides"]["en-xx"]["significant"]
    # different sentences are refused loudly
    fewer = breadth.run(_engine(translator(flores)), _config(flores, tmp_path, "b3", prompt="chat", per_direction=3))
    with pytest.raises(ValueError, match="different sentences"):
        breadth.compare(base, fewer)


def test_cli_end_to_end_with_the_tiny_model(flores, tmp_path, tiny_model_dir):
    out = tmp_path / "breadth"
    common = ["--model", str(tiny_model_dir), "--chat-format", "chatml", "--corpus", str(flores),
              "--langs", "fra_Latn,deu_Latn", "--per-direction", "2", "--max-new-tokens", "6", "--out", str(out),
              "--quiet"]
    res = CliRunner().invoke(app, ["breadth", *common, "--system-name", "base", "--prompt", "few-shot"])
    assert res.exit_code == 0, res.output
    assert "breadth: base (few-shot)" in res.output and "translated 8, reused 0" in res.output
    res = CliRunner().invoke(app, ["breadth", *common, "--system-name", "base", "--prompt", "few-shot"])
    assert res.exit_code == 0 and "translated 0, reused 8" in res.output, res.output  # the cache pays it once
    res = CliRunner().invoke(app, ["breadth", *common, "--system-name", "tuned", "--prompt", "chat", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sentences"] == 8
    res = CliRunner().invoke(app, ["breadth-compare", str(out / "base.json"), str(out / "tuned.json")])
    assert res.exit_code == 0, res.output
    assert "en->xx pooled chrF" in res.output and "paired bootstrap" in res.output
    for ext in (".md", ".png", ".json"):
        assert (out / f"base-vs-tuned{ext}").stat().st_size > 0
    assert "### Latn" in (out / "base-vs-tuned.md").read_text(encoding="utf-8")
