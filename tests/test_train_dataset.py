"""Training data: records far longer than max_len are dropped (or cut at a turn) without being tokenised."""

import json

from bayling.chat_formats import get_format
from bayling.train.dataset import read_conversations, read_preferences, tokenize_conversations, tokenize_preferences

HUGE = "Der Hund schläft im Garten. " * 110_000  # about 3 MB: far over any max_len here


class _Recording:
    """The tokenizer, noting the longest text it was asked to encode."""

    def __init__(self, tokenizer):
        self._tokenizer, self.longest = tokenizer, 0

    def __call__(self, text, **kw):
        self.longest = max(self.longest, len(text))
        return self._tokenizer(text, **kw)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _pair(chosen, i=0):
    return {"prompt": [{"role": "user", "content": f"Translate: the dog {i} sleeps."}],
            "chosen": chosen, "rejected": f"Die Katze {i} schläft."}


def test_a_huge_preference_pair_is_dropped_without_tokenising_it(tiny_tokenizer, tmp_path):
    fmt, normal = get_format("chatml"), [_pair(f"Der Hund {i} schläft.", i) for i in range(3)]
    long = _pair("Der Hund schläft. " * 200)  # over max_len, but only found so by tokenising
    base, base_stats = tokenize_preferences(read_preferences(_jsonl(tmp_path / "a.jsonl", [*normal, long])),
                                            tiny_tokenizer, fmt, 256)
    tok = _Recording(tiny_tokenizer)
    rows = [normal[0], _pair(HUGE), *normal[1:], long]
    pairs, stats = tokenize_preferences(read_preferences(_jsonl(tmp_path / "b.jsonl", rows)), tok, fmt, 256)
    assert tok.longest < 100_000  # the 3 MB answer never reached the tokenizer
    assert stats.dropped == {"longer than max_len": 2} and base_stats.dropped == {"longer than max_len": 1}
    assert stats.read == 5 and stats.kept == 3
    assert [(p.chosen.input_ids, p.rejected.labels) for p in pairs] == [(p.chosen.input_ids, p.rejected.labels)
                                                                        for p in base]


def test_a_huge_conversation_is_dropped_or_cut_without_tokenising_it(tiny_tokenizer, tmp_path):
    fmt = get_format("chatml")
    def turn(user, answer):
        return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]

    first = turn("Translate: the dog sleeps.", "Der Hund schläft.")
    rows = [{"messages": first}, {"messages": turn(HUGE, "Ja.")},
            {"messages": [*first, *turn("Again, longer.", HUGE)]}]
    tok = _Recording(tiny_tokenizer)
    examples, stats = tokenize_conversations(read_conversations(_jsonl(tmp_path / "c.jsonl", rows)), tok, fmt, 256)
    assert tok.longest < 100_000
    assert stats.dropped == {"longer than max_len": 1} and stats.kept == 2 and stats.truncated == 1
    assert examples[0].input_ids == examples[1].input_ids  # cut back to the first turn, as tokenising would have


def test_a_pair_with_more_characters_than_max_len_but_fewer_tokens_is_kept(tiny_tokenizer, tmp_path):
    # Characters are no bound on tokens in this direction: a word the vocabulary holds whole is one token.
    text, fmt = " Instruction" * 30, get_format("chatml")
    pairs, stats = tokenize_preferences(read_preferences(_jsonl(tmp_path / "d.jsonl", [_pair(text)])), tiny_tokenizer,
                                        fmt, 64)
    assert len(text) > 64 and stats.kept == 1, stats.as_dict()
    assert len(pairs[0].chosen) <= 64
