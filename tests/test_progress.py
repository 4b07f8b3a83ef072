"""The one progress bar in a log file (no terminal), and chat_turns moving it batch by batch."""

from bayling.eval.engines import chat_turns
from bayling.infer.engine import GenerationConfig
from bayling.progress import progress_bar
from bayling.testing.fake_engine import FakeEngine


def test_enabled_bar_writes_plain_lines_where_stderr_is_no_terminal(capsys):
    with progress_bar(True, 10, "sampling", unit="answers", every=0.0) as bar:
        bar(4)
        bar.set(10)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("sampling: 4/10 answers, ") and "/s, ETA " in lines[0]
    assert lines[1].startswith("sampling: 10/10 answers")
    assert lines[2].startswith("sampling: 10/10 answers") and lines[2].endswith("done in 0:00")


def test_log_lines_are_rate_limited_and_an_auto_bar_stays_silent_off_terminal(capsys):
    with progress_bar(True, None, "building", every=3600.0) as bar:
        for _ in range(50):
            bar(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("building: 50, ") and "done in" in lines[0]
    with progress_bar(None, 5, "quiet", every=0.0) as bar:  # None: a terminal only
        bar(5)
    assert capsys.readouterr().err == ""


class Batched(FakeEngine):
    """A fake engine that takes 3 requests per call and records every call's size."""

    requests_per_call = 3

    def __init__(self):
        super().__init__(reply=lambda messages: f"answer to {messages[-1]['content']}")
        self.sizes: list[int] = []

    def chat(self, conversations, config):
        self.sizes.append(len(conversations))
        return super().chat(conversations, config)


def test_chat_turns_hands_the_engine_its_batch_at_a_time_and_keeps_each_conversation_in_order(capsys):
    engine = Batched()
    turns = [[f"c{i} t0", f"c{i} t1"] for i in range(5)] + [["c5 t0"], ["c6 t0"]]
    replies = chat_turns(engine, turns, GenerationConfig(max_new_tokens=20), progress=True)
    assert engine.sizes == [3, 3, 1, 3, 2]  # turn 0: 7 conversations, turn 1: the 5 that go on
    assert replies[4] == ["answer to c4 t0", "answer to c4 t1"] and replies[6] == ["answer to c6 t0"]
    assert capsys.readouterr().err.splitlines()[-1].startswith("generating: 12/12")
