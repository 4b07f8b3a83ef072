import base64
import json
import re

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
