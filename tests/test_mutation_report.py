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


def test_the_report_records_what_it_measured_and_a_changed_module_makes_it_stale(tmp_path):
    from benchmarks.mutation import measured, recorded, stale_modules

    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\nonly_mutate = ["pkg/a.py", "pkg/b.py"]\n')
    (tmp_path / "pkg").mkdir()
    for name in ("a", "b"):
        (tmp_path / "pkg" / f"{name}.py").write_text(f"def {name}():\n    return 1\n")
    on = measured(tmp_path)  # not a git checkout: the commit is unknown, the hashes are not
    assert on["commit"] == "unknown" and set(on["sources"]) == {"pkg/a.py", "pkg/b.py"}
    results = tmp_path / "mutation.md"
    results.write_text(report(*tally(LISTING), {}, on))
    assert recorded(results.read_text()) == on
    assert stale_modules(results, tmp_path) == []
    (tmp_path / "pkg" / "b.py").write_text("def b():\n    return 2\n")  # a mutant of the code, made by hand
    assert stale_modules(results, tmp_path) == ["pkg/b.py"]
    results.write_text("# an older report\n")
    assert stale_modules(results, tmp_path) == ["(no record of what was measured)"]


def test_every_mutation_score_the_docs_quote_describes_todays_code():
    import re

    from benchmarks.mutation import stale_modules
    from tests.helpers import ROOT

    quoted = set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        quoted |= set(re.findall(r"benchmarks/results/(mutation-[\d-]+\.md)", doc.read_text()))
    assert quoted, "the docs quote no mutation result"
    for name in sorted(quoted):
        stale = stale_modules(ROOT / "benchmarks" / "results" / name)
        assert not stale, f"docs quote benchmarks/results/{name}, measured on other code: {stale}; re-run make mutation"


def test_every_survivor_is_judged_by_a_rule_or_named_a_gap():
    from benchmarks.mutation_notes import why

    equivalent = (
        "x.y__mutmut_1\n-    order = torch.argsort(ids, stable=True)\n+    order = torch.argsort(ids, stable=False)"
    )
    assert why(equivalent)[0] == "sort-order"
    real = "x.y__mutmut_2\n-    return a - b\n+    return a + b"  # a changed number: no rule may cover it
    assert why(real) is None
    per_module, survivors = tally("    a.b.x_f__mutmut_1: survived\n    a.b.x_g__mutmut_2: survived\n")
    diffs = {"a.b.x_f__mutmut_1": equivalent.split("\n", 1)[1], "a.b.x_g__mutmut_2": real.split("\n", 1)[1]}
    text = report(per_module, survivors, diffs)
    assert "## Survivors (2): 1 equivalent or accepted, 1 gaps" in text
    assert (
        "| sort-order | 1 | equivalent: the ids are unique" in text and "| gap | 1 | no rule: a test to write |" in text
    )
    assert text.index("a.b.x_g__mutmut_2: survived` (gap)") < text.index("a.b.x_f__mutmut_1: survived` (sort-order)")
