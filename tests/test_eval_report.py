import base64
import json
import re

import pytest

from typer.testing import CliRunner

from bayling.eval.cli import app
from bayling.eval.report import summary_of, to_html, to_markdown

BEFORE = {"task": "translation", "bleu": 10.0, "chrf": 30.0, "off_target_rate": 0.4, "n": 20,
          "signatures": {"bleu": "nrefs:1|tok:zh"},
          "breakdown": {"direction": {"eng_Latn-zho_Hans": {"bleu": 8.0, "off_target_rate": 0.5},
                                      "eng_Latn-deu_Latn": {"bleu": 12.0, "off_target_rate": 0.3}}}}
AFTER = {"task": "translation", "bleu": 20.0, "chrf": 45.0, "off_target_rate": 0.1, "n": 20,
         "breakdown": {"direction": {"eng_Latn-zho_Hans": {"bleu": 18.0, "off_target_rate": 0.1},
                                     "eng_Latn-deu_Latn": {"bleu": 22.0, "off_target_rate": 0.1}}}}


def test_summary_puts_primary_metrics_first():
    assert list(summary_of(BEFORE))[:3] == ["bleu", "chrf", "off_target_rate"]


def test_markdown_single_and_side_by_side():
    one = to_markdown([("base", BEFORE)])
    assert "| bleu | 10.00 |" in one and "By direction" in one and "`nrefs:1|tok:zh`" in one
    two = to_markdown([("base", BEFORE), ("tuned", AFTER)])
    assert "| bleu | 10.00 | 20.00 | 10.00 |" in two
    assert "| eng_Latn-zho_Hans | 0.500 | 0.100 | -0.400 |" in two


def test_html_is_self_contained_with_plots():
    page = to_html([("base", BEFORE), ("tuned", AFTER)])
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4  # two metrics by direction, each side by side and before -> after
    assert base64.b64decode(images[0])[:4] == b"\x89PNG"
    assert "http" not in page.replace("http-equiv", "")


def test_report_cli(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(BEFORE))
    b.write_text(json.dumps(AFTER))
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    res = CliRunner().invoke(app, ["report", str(a), str(b), "--names", "base,tuned", "--html", str(html),
                                   "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    assert "tuned" in md.read_text() and html.read_text().startswith("<!doctype html>")


def _fake_results(run, system, hyp_of):
    """A results.json as stage_eval writes it, with hypotheses from `hyp_of(ref, i)`."""
    refs = [f"Der Zug fährt um {i} Uhr in die Stadt und kommt pünktlich an." for i in range(24)]
    examples = [{"src": f"The train leaves at {i}.", "ref": r, "hyp": hyp_of(r, i), "direction": "eng_Latn-deu_Latn"}
                for i, r in enumerate(refs)]
    from bayling.eval.translation import score_directions
    from bayling.corpus import Pair

    pairs = [Pair(e["src"], e["ref"], "eng_Latn", "deu_Latn", f"t:{i}") for i, e in enumerate(examples)]
    s = score_directions(pairs, [e["hyp"] for e in examples])
    res = {"chrf": s["chrf"], "bleu": s["bleu"], "off_target_rate": None, "constraint_inclusion": 0.5,
           "refinement_on_target": 1.0, "refinement_changed": 0.5,
           "breakdown": {"direction": {"eng_Latn-deu_Latn": {"chrf": s["chrf"], "bleu": s["bleu"],
                                                             "constraint_inclusion": 0.5, "refinement_on_target": 1.0,
                                                             "refinement_changed": 0.25}}},
           "examples": examples}
    run.mkdir(parents=True, exist_ok=True)
    (run / "results.json").write_text(json.dumps({system: res}))


def test_compare_systems_tables_plots_and_tests_the_difference(tmp_path):
    from bayling.eval.report import compare_systems

    _fake_results(tmp_path / "a", "base", lambda r, i: "Zug Stadt" if i % 2 else "Hallo Welt")
    _fake_results(tmp_path / "b", "tuned", lambda r, i: r)  # the references themselves
    md = compare_systems([("weak", str(tmp_path / "a"), "base"), ("strong", str(tmp_path / "b"), "tuned")],
                         tmp_path / "cmp")
    assert "| eng_Latn-deu_Latn |" in md and "| **mean** |" in md
    assert "| eng_Latn-deu_Latn | 0.50 / 1.00 / 0.25 | 0.50 / 1.00 / 0.25 |" in md  # refinement per direction
    doc = json.loads((tmp_path / "cmp.json").read_text())
    test = doc["paired_chrf"]["systems"]["strong"]
    assert doc["paired_chrf"]["sentences"] == 24
    assert test["delta"] > 50 and test["significant"] and test["p_value"] < 0.05
    assert "Paired bootstrap against weak" in md and "(significant)" in md
    assert (tmp_path / "cmp.png").stat().st_size > 1000

    # A run that kept only a few examples cannot be paired: said, not guessed.
    doc_a = json.loads((tmp_path / "a" / "results.json").read_text())
    doc_a["base"]["examples"] = doc_a["base"]["examples"][:8]
    (tmp_path / "a" / "results.json").write_text(json.dumps(doc_a))
    md = compare_systems([("weak", str(tmp_path / "a"), "base"), ("strong", str(tmp_path / "b"), "tuned")],
                         tmp_path / "cmp2")
    assert "No paired test" in md
    assert json.loads((tmp_path / "cmp2.json").read_text())["paired_chrf"] is None

    with pytest.raises(ValueError, match="no system 'nope'.*base"):
        compare_systems([("x", str(tmp_path / "a"), "nope")], tmp_path / "cmp3")


def test_compare_plot_names_the_eval_set_the_runs_share():
    from bayling.eval.report import _eval_set_name

    assert _eval_set_name({"corpus": "flores", "split": "devtest", "directions": []}) == "FLORES-200 devtest"
    assert _eval_set_name({"corpus": "newstest2020", "split": None}) == "newstest2020"
    assert _eval_set_name(None) is None and _eval_set_name({"corpus": None}) is None
