"""The documentation says what the code does: names in INTERFACES.md exist, README commands run as
written, links resolve, the lab notebook is indexed, and model cards carry Hugging Face front matter."""

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(")
DOTTED = re.compile(r"(?<![\w/.])bayling(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w/.-])bayling/[\w/]*[\w]+(?:\.py)?/?")


def _resolve(dotted: str):
    """bayling.a.b.c -> the object: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)  # AttributeError names what drifted
        return obj
    raise ModuleNotFoundError(dotted)


def _code_blocks(text: str):
    """(info string, body) of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _interface_names():
    """(where, module candidates, name) for every function or class a code block of INTERFACES.md names."""
    text = (ROOT / "docs" / "INTERFACES.md").read_text(encoding="utf-8")
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        modules = re.findall(r"bayling(?:\.\w+)*", title)
        for _, block in _code_blocks(body):
            for line in block.splitlines():
                if not line.strip() or line[0].isspace() or line.startswith(("#", "@")):
                    continue  # class fields, comments, decorators
                code, _, comment = line.partition("#")
                bases = modules + DOTTED.findall(comment)
                names = [m.group(1) for m in re.finditer(r"^(?:def|class)\s+(\w+)", code)]
                names += [m.group(1) for m in re.finditer(r"^([A-Z_][A-Z0-9_]*)\s*:", code)]
                depth = 0
                for i, ch in enumerate(code):  # calls at the top level of the line, not inside arguments
                    if ch == "(":
                        if depth == 0:
                            m = CALL.search(code[: i + 1])
                            if m and m.end() == i + 1 and not code[: m.start()].rstrip().endswith((")", "->")):
                                names.append(m.group(1))
                        depth += 1
                    elif ch == ")":
                        depth -= 1
                for name in dict.fromkeys(names):
                    if name not in ("def", "class"):
                        yield f"## {title}: {line.strip()}", bases, name


def test_interfaces_md_names_exist():
    text = (ROOT / "docs" / "INTERFACES.md").read_text(encoding="utf-8")
    for path in set(PATH.findall(text)):
        assert (ROOT / path).exists(), f"INTERFACES.md names {path}, which does not exist"
    for dotted in set(DOTTED.findall(text)) - {"bayling.json"}:  # bayling.json: the file every run writes
        _resolve(dotted)  # every bayling.module(.name) in prose, tables and comments
    checked = 0
    for where, bases, name in _interface_names():
        found = []
        for base in bases:
            try:
                found.append(_resolve(f"{base}.{name}"))
            except (ModuleNotFoundError, AttributeError):
                pass
        assert found, f"INTERFACES.md {where!r}: {name} is not importable from {' or '.join(bases)}"
        checked += 1
    assert checked > 60  # the parser still sees the code blocks


# -- commands in the README and the guide ----------------------------------------------------------

def _bayling_commands(text: str):
    """Every `bayling ...` (or `-m bayling.cli ...`) command line in the bash blocks, as argv after it."""
    for info, block in _code_blocks(text):
        if info not in ("bash", "sh", ""):
            continue
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            for piece in re.split(r"&&|\|\||;|\|", line):
                try:
                    words = shlex.split(piece, comments=True)
                except ValueError as err:
                    raise AssertionError(f"cannot parse {piece!r}: {err}") from None
                for i, w in enumerate(words):
                    if w == "bayling" and (i == 0 or words[i - 1] != "-m"):
                        yield piece.strip(), words[i + 1:]
                        break
                    if w == "bayling.cli" and i and words[i - 1] == "-m":
                        yield piece.strip(), words[i + 1:]
                        break


@pytest.fixture(scope="module")
def cli():
    from typer.main import get_command
    from typer.testing import CliRunner

    from bayling.cli import app

    runner = CliRunner()
    helps = {}

    def help_of(path):
        if path not in helps:
            r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"})
            assert r.exit_code == 0, (path, r.output)
            helps[path] = r.output
        return helps[path]

    return get_command(app), help_of


@pytest.mark.parametrize("doc", ["README.md", "docs/GUIDE.md"])
def test_commands_name_real_subcommands_and_options(cli, doc):
    root, help_of = cli
    seen = 0
    for line, argv in _bayling_commands((ROOT / doc).read_text(encoding="utf-8")):
        cmd, path, rest = root, (), list(argv)
        while getattr(cmd, "commands", None):
            assert rest and rest[0] in cmd.commands, f"{doc}: {line!r}: no subcommand {rest[:1]} under {path}"
            cmd, path = cmd.commands[rest[0]], path + (rest.pop(0),)
        listed = help_of(path)
        for word in rest:
            opt = word.split("=", 1)[0]
            if opt.startswith("-") and opt != "-" and opt not in ("--help", "--debug"):
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", listed), \
                    f"{doc}: {line!r}: `bayling {' '.join(path)} --help` lists no {opt}"
        seen += 1
    assert seen >= 15


# -- links and the lab notebook --------------------------------------------------------------------

def _markdown_files():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "experiments").rglob("*.md"))
    yield ROOT / "bayling" / "assets" / "bayling-mini" / "README.md"


def test_relative_links_resolve():
    for md in _markdown_files():
        text = md.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            assert (md.parent / path).exists(), f"{md.relative_to(ROOT)}: link {target} leads nowhere"


def test_recipes_hold_what_a_user_runs_and_experiments_are_indexed():
    from bayling.recipe import Recipe
    from bayling.train.trainer import read_recipe_yaml

    assert len(list((ROOT / "recipes").glob("*.yaml"))) <= 6
    assert not any((ROOT / "docs" / "results").glob("*"))  # results live with their experiment
    index = (ROOT / "experiments" / "README.md").read_text(encoding="utf-8")
    folders = sorted(p for p in (ROOT / "experiments").iterdir() if p.is_dir())
    assert len(folders) >= 20
    for folder in folders:
        assert f"]({folder.name}/" in index, f"experiments/README.md does not index {folder.name}"
        if not (folder / "results.md").is_file():  # written, not yet run: indexed as pending
            assert re.search(rf"\| pending \| \[{re.escape(folder.name)}\]", index), folder.name
            continue
        results = (folder / "results.md").read_text(encoding="utf-8")
        for field in ("Question", "Setting", "Result", "Verdict", "Commit"):
            assert f"**{field}.**" in results, f"{folder.name}/results.md has no {field}"
        assert f"]({folder.name}/results.md)" in index, f"experiments/README.md does not link {folder.name}/results.md"
        for recipe in folder.glob("*.yaml"):  # experiment recipes still parse (test_recipe checks recipes/)
            r = Recipe.from_dict(read_recipe_yaml(recipe))
            assert r.eval.directions and r.data, recipe


# -- model cards -----------------------------------------------------------------------------------

def _front_matter(card: str) -> dict:
    m = re.match(r"---\n(.*?)\n---\n", card, flags=re.DOTALL)
    assert m, "no YAML front matter between --- lines at the top"
    return yaml.safe_load(m.group(1))


def _summary(**over):
    config = {"out": "runs/x/model", "data": "runs/x/data.jsonl", "init_adapter": None, "max_len": 384,
              "packing": True, "lr": 5e-4, "batch_size": 4, "grad_accum": 1, "dpo_beta": 0.1, "sft_weight": 1.0}
    s = {"base_model": "gemma3-270m", "method": "lora", "objective": "sft", "chat_format": "gemma",
         "config": config, "data": {"kept": 10, "assistant_tokens": 500,
                                    "languages": ["eng_Latn", "zho_Hans", "npi_Deva"]},
         "packing_efficiency": 0.98, "global_step": 3, "final_loss": 1.5, "selection": None}
    s.update(over)
    return s


def test_generated_model_card_has_hugging_face_front_matter():
    from bayling.train.trainer import _model_card

    card = _model_card(_summary())
    meta = _front_matter(card)
    assert meta["base_model"] == "google/gemma-3-270m" and meta["license"] == "gemma"
    assert meta["language"] == ["en", "zh", "ne"] and meta["library_name"] == "peft"
    assert {"bayling", "translation", "lora", "sft"} <= set(meta["tags"])
    assert "| base model | `gemma3-270m` |" in card  # the table follows the front matter

    dpo = _front_matter(_model_card(_summary(objective="dpo", method="full", data={"kept": 4, "assistant_tokens": 9},
                                             datasets=["facebook/flores"])))
    assert "language" not in dpo  # no languages counted: none claimed
    assert dpo["library_name"] == "transformers" and "dpo" in dpo["tags"] and dpo["datasets"] == ["facebook/flores"]
    local = _front_matter(_model_card(_summary(base_model=str(ROOT))))
    assert "base_model" not in local and "license" not in local  # a local folder is no Hub id; no licence guessed


def test_shipped_model_card_has_front_matter_and_its_figures():
    card = (ROOT / "bayling" / "assets" / "bayling-mini" / "README.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    for key in ("base_model", "language", "license", "library_name", "tags", "datasets"):
        assert meta.get(key), key
    assert meta["library_name"] == "peft" and len(meta["language"]) == 9
    assert "39.0" in card and "31.5" in card  # v7 and the base on FLORES-200 devtest
