"""make mutation's report: mutmut's results tallied per module, survivors listed with their diffs."""

from collections import Counter

from benchmarks.mutation import report, score, tally

LISTING = """
    depth_lightning.evaluation.bootstrap.x_interval__mutmut_1: killed
    depth_lightning.evaluation.bootstrap.x_interval__mutmut_2: timeout
    depth_lightning.evaluation.bootstrap.x_interval__mutmut_3: survived
    depth_lightning.evaluation.metrics.xǁDepthMetricsǁreset__mutmut_1: killed
    depth_lightning.evaluation.protocol.x_region_box__mutmut_4: no tests
    depth_lightning.models.bins.xǁLogDepthBinsǁhard__mutmut_9: not checked
"""


def test_mutants_are_tallied_per_module_and_timeouts_count_as_detected():
    per_module, survivors = tally(LISTING)
    assert per_module["depth_lightning.evaluation.bootstrap"] == Counter(killed=1, timeout=1, survived=1)
    assert per_module["depth_lightning.evaluation.metrics"] == Counter(killed=1)
    assert survivors == [
        "depth_lightning.evaluation.bootstrap.x_interval__mutmut_3: survived",
        "depth_lightning.evaluation.protocol.x_region_box__mutmut_4: no tests",
    ]
    assert score(per_module["depth_lightning.evaluation.bootstrap"]) == 2 / 3
    assert score(sum(per_module.values(), Counter())) == 3 / 5  # "not checked" is left out
    text = report(per_module, survivors, {"depth_lightning.evaluation.bootstrap.x_interval__mutmut_3": "- a\n+ b"})
    assert "**60.0 %** of 6 mutants detected" in text
    assert "| `depth_lightning.evaluation.bootstrap` | 3 | 1 | 1 | 1 | 0 | 66.7 % |" in text
    assert "```diff\n- a\n+ b\n```" in text
