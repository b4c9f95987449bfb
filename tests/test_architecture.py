"""The package shows its design: subpackages on floors that import only downwards, no import cycle, thin
entry points that never import one another, one run lifecycle, results returned (not read off objects),
short functions, an architecture page that names real code, checkpoints of the old layout still load."""

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT

PACKAGE = ROOT / "depth_lightning"
ENTRY_POINTS = {"train", "evaluate", "predict", "score", "benchmark", "check", "export", "prepare", "demo"}
TOP_LEVEL = ENTRY_POINTS | {"module", "__init__"}
# The floors, lowest first: a subpackage (or top-level module) imports only from floors below its own.
# docs/architecture.md shows the same table.
FLOORS = (
    ("foundation", {"core"}),
    ("models and data", {"models", "data"}),
    ("evaluation", {"evaluation"}),
    ("inference", {"inference"}),
    ("training", {"module", "callbacks"}),
    ("run", {"run"}),
    ("entry points", ENTRY_POINTS | {"__init__"}),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules ``path`` imports, anywhere in the file (function-level imports included):
    ``from depth_lightning.x import y`` is the module ``x.y`` when it is one, else ``x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            }
    return found & known


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle_and_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    edges = graph()
    assert "depth_lightning.evaluation.evaluator" in edges["depth_lightning.module"]  # the graph is real
    assert find_cycle(edges) is None, find_cycle(edges)


def unit(module: str) -> str:
    """The subpackage or top-level module ``depth_lightning.<unit>...`` belongs to (``__init__``: the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(module: str) -> int:
    found = [i for i, (_, units) in enumerate(FLOORS) if unit(module) in units]
    assert found, f"{module} is on no floor: add {unit(module)!r} to FLOORS and to docs/architecture.md"
    return found[0]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Imports between units that do not go to a lower floor (same-floor units do not import each other)."""
    return [
        f"{a} ({FLOORS[floor(a)][0]}) imports {b} ({FLOORS[floor(b)][0]})"
        for a, targets in sorted(edges.items())
        for b in sorted(targets)
        if unit(a) != unit(b) and floor(b) >= floor(a)
    ]


def test_every_import_goes_to_a_lower_floor_and_the_check_finds_one_that_does_not():
    planted = {"depth_lightning.data.frames": {"depth_lightning.evaluation.protocol", "depth_lightning.core.errors"}}
    assert upward_imports(planted) == [
        "depth_lightning.data.frames (models and data) imports depth_lightning.evaluation.protocol (evaluation)"
    ]
    assert upward_imports({"depth_lightning.models.bins": {"depth_lightning.data.io"}})  # same floor, other unit
    edges = graph()
    assert sum(len(t) for t in edges.values()) > 200  # the graph is real
    assert upward_imports(edges) == []


def test_the_architecture_page_shows_the_floors_of_the_test():
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r[2]) for r in rows] == list(range(len(FLOORS)))
    for row, (_, units) in zip(rows, FLOORS, strict=True):
        shown = {u for u in units if u != "__init__" and (f"`{u}/`" in row or f"`{u}.py`" in row)}
        assert shown, f"{row} names none of {sorted(units)}"


def test_only_entry_points_and_the_module_sit_at_the_top_and_no_entry_point_imports_another():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL, top ^ TOP_LEVEL
    entry = {f"depth_lightning.{e}" for e in ENTRY_POINTS}
    for name, targets in graph().items():
        assert not targets & entry, f"{name} imports the entry point(s) {targets & entry}"


def test_the_foundation_imports_only_itself_and_the_error_types_nothing():
    edges = graph()
    assert edges["depth_lightning.core.errors"] == set()
    for name, targets in edges.items():
        if unit(name) == "core":
            assert {unit(t) for t in targets} <= {"core"}, (name, targets)


def test_the_training_entry_point_is_a_short_flow_and_no_module_scans_the_trainers_callbacks():
    assert len((PACKAGE / "train.py").read_text().splitlines()) < 150
    scans = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "callbacks" and isinstance(node.value, ast.Attribute):
                if node.value.attr == "trainer":  # run.trainer.callbacks: reading callbacks' state from outside
                    scans.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert scans == []


def test_an_evaluation_returns_its_result_and_leaves_none_on_the_evaluator():
    from depth_lightning.evaluation.evaluator import EvaluationResult, Evaluator
    from depth_lightning.evaluation.protocol import EvalProtocol

    evaluator = Evaluator(EvalProtocol(), predictions=["soft"], per_image=False)
    evaluator.process({"depth": torch.full((1, 4, 4), 2.0)}, {"soft": torch.full((1, 4, 4), 2.5)})
    result = evaluator.evaluate()
    assert isinstance(result, EvaluationResult) and result.values["abs_rel"] == pytest.approx(0.25)
    assert not hasattr(evaluator, "result")


def long_functions(root: Path, most: int = 60) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > most:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_60_lines(tmp_path):
    (tmp_path / "long.py").write_text("def f():\n" + "    x = 1\n" * 60 + "\n\ndef g():\n" + "    x = 1\n" * 59)
    assert [f.rsplit(" ", 3)[-3:] for f in long_functions(tmp_path)] == [["f", "(61", "lines)"]]  # g: 60 lines
    assert long_functions(PACKAGE) + long_functions(ROOT / "experiments") == []


def test_every_config_target_and_the_architecture_page_name_real_code():
    from hydra.utils import get_object

    targets = set()
    for path in (ROOT / "conf").rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                targets.add(line.split(":", 1)[1].split("#")[0].strip())
    assert len(targets) > 15
    for target in sorted(targets):
        get_object(target)  # raises when a config names code that moved away
    named = modules_named_in((ROOT / "docs" / "architecture.md").read_text())
    files = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert files <= named, f"docs/architecture.md does not name {sorted(files - named)}"


def test_the_flows_on_the_architecture_page_name_real_code():
    import importlib

    page = (ROOT / "docs" / "architecture.md").read_text()
    flows = page[page.index("## One owner for every number") : page.index("## Where each idea")]
    classes = {"RunLifecycle": "run.lifecycle", "EvaluationModule": "module", "Evaluator": "evaluation.evaluator"}
    roots = ("core", "models", "data", "evaluation", "inference", "run", *ENTRY_POINTS)
    pattern = r"(?<![\w./])((?:" + "|".join((*roots, *classes)) + r")(?:\.[A-Za-z_]\w*)+)(?![\w.=/])"  # code, not files
    names = set(re.findall(pattern, flows))
    assert len(names) > 15, names
    for name in sorted(names):
        head, *rest = name.split(".")
        obj = importlib.import_module(f"depth_lightning.{classes.get(head, head)}")
        rest = [head, *rest] if head in classes else rest
        for part in rest:
            if inspect.ismodule(obj) and not hasattr(obj, part):
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            else:
                assert hasattr(obj, part), f"docs/architecture.md names {name}: {obj!r} has no {part!r}"
                obj = getattr(obj, part)


def modules_named_in(page: str) -> set[str]:
    """The files the package tree of the architecture page names: ``evaluation/metrics.py``, ``train.py``..."""
    tree = page.split("```")[1]
    named, package = set(), ""
    for line in tree.splitlines():
        depth = len(line) - len(line.lstrip())
        words = line.strip().split("  ")[0].split()
        if depth == 2:
            package = words[0] if words and words[0].endswith("/") and len(words) == 1 else ""
        files = [w for w in words if w.endswith(".py")]
        named |= {f"{package if depth > 2 else ''}{f}" for f in files}
    return named


@pytest.fixture
def old_layout_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint rewritten as depth_lightning wrote it before the subpackages: the protocol and
    the schedules named at their old paths."""
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    hp["scheduler"]["_target_"] = hp["scheduler"]["_target_"].replace(
        "depth_lightning.models.schedules.", "depth_lightning.schedules."
    )
    hp["data"]["protocol"]["_target_"] = "depth_lightning.protocol.EvalProtocol"
    path = tmp_path / "old.ckpt"
    torch.save(ckpt, path)
    return path


def test_a_checkpoint_of_the_old_layout_loads_and_rebuilds_its_data(old_layout_checkpoint, tiny_checkpoint):
    from omegaconf import OmegaConf

    from depth_lightning.core.config import build
    from depth_lightning.evaluate import evaluation_data
    from depth_lightning.evaluation.protocol import EvalProtocol
    from depth_lightning.inference.loading import checkpoint_record, load_model

    model, today = load_model(old_layout_checkpoint), load_model(tiny_checkpoint)
    for key, value in today.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    cfg = OmegaConf.create({"ckpt_path": str(old_layout_checkpoint), "data": None})
    data = evaluation_data(cfg, model, checkpoint_record(old_layout_checkpoint)["data"])  # what evaluate tests on
    datamodule = build(data, "data")
    assert isinstance(datamodule.protocol, EvalProtocol) and data["protocol"]["_target_"].startswith(
        "depth_lightning.evaluation."
    )  # the suite's own class, whatever name the file gave it
