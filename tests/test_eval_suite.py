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
