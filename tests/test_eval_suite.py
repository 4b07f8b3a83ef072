"""The eval suite a recipe runs: numbers read across systems."""

import pytest


def test_reference_off_target_is_the_detectors_floor():
    from bayling.eval.suite import reference_off_target

    examples = [{"direction": "eng_Latn-zho_Hans", "ref": "火车站星期天不开门。"},
                {"direction": "eng_Latn-zho_Hans", "ref": "The station is closed on Sundays."},  # not Chinese
                {"direction": "zho_Hans-eng_Latn", "ref": "The train station is closed on Sundays."}]
    floor = reference_off_target(examples)
    assert floor["direction"] == {"eng_Latn-zho_Hans": 0.5, "zho_Hans-eng_Latn": 0.0}
    assert floor["off_target_rate"] == pytest.approx(1 / 3)


class _Refiner:
    """A scripted chat model: turn 1 answers with the reference minus its words longer than four
    letters; asked for terms, it adds them into German but ignores the request into English."""

    requests_per_call = 8

    def __init__(self, pairs):
        self.ref = {p.src: p.tgt for p in pairs}

    def chat(self, conversations, config):
        out = []
        for conv in conversations:
            ref = next(r for s, r in self.ref.items() if s in conv[0]["content"])
            first = " ".join(w for w in ref.split() if len(w.strip(".,")) <= 4)
            if len(conv) == 1:
                out.append(first)
            else:
                asked = conv[-1]["content"].split('"')[1]
                out.append(f"{first} {asked}." if "into German" in conv[0]["content"] else first)
        return out


def test_refinement_is_scored_per_direction_and_every_session_is_kept():
    from bayling.corpus import Pair
    from bayling.eval.suite import SuiteConfig, evaluate_system, summary

    de = ["Der Bahnhof bleibt am Sonntag geschlossen.", "Die Kinder spielen heute draußen im Garten.",
          "Wir fahren morgen früh mit dem Zug nach Berlin."]
    en = ["The station stays closed on Sunday mornings.", "The children are playing outside in the garden.",
          "Tomorrow morning we travel to Berlin by train."]
    pairs = ([Pair(e, d, "eng_Latn", "deu_Latn", f"t:{i}") for i, (e, d) in enumerate(zip(en, de))]
             + [Pair(d, e, "deu_Latn", "eng_Latn", f"t:{i}") for i, (e, d) in enumerate(zip(en, de))])
    cfg = SuiteConfig(directions=["eng_Latn-deu_Latn", "deu_Latn-eng_Latn"], limit=3)
    r = evaluate_system(_Refiner(pairs), "chat", pairs, [], cfg, seed=3)

    by = r["breakdown"]["direction"]
    assert by["eng_Latn-deu_Latn"]["constraint_inclusion"] == 1.0
    assert by["deu_Latn-eng_Latn"]["constraint_inclusion"] == 0.0
    assert by["deu_Latn-eng_Latn"]["refinement_changed"] == 0.0 and by["eng_Latn-deu_Latn"]["refinement_changed"] == 1.0
    assert by["eng_Latn-deu_Latn"]["refinement_sessions"] == 3 and "chrf" in by["eng_Latn-deu_Latn"]
    assert r["constraint_inclusion"] == 0.5  # the system-level rate is the same turns pooled

    examples = r["refinement_examples"]
    assert len(examples) == 6  # every session, not a sample
    failed = [e for e in examples if e["constraint_inclusion"] is False]
    assert {e["direction"] for e in failed} == {"deu_Latn-eng_Latn"}
    for e in examples:
        assert len(e["terms"]) == 1 and e["terms"][0] in e["ref"] and e["terms"][0] not in e["replies"][0]
    assert "refinement_examples" not in summary(r)
