"""Every command the README and docs/ show: parsed here by the tool that will read it (Hydra's parser
and config composition for the entry points, the real argparse parsers for the others, the Makefile's
targets, the console scripts); every command in a code block is run here with tiny settings, on miniature
datasets in their published layout where it names one, and its output checked, unless NOT_RUN_HERE lists
it with its reason (at most 10); `make install` and `make test` are what .ci/run runs."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import tomllib
import torch
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser

from depth_lightning.core.config import build, compose_config
from depth_lightning.run.command import command_line
from tests.helpers import ROOT, SHARED, TINY_SWEEP_JOB, composed_for, copy_records, run_module, train_here

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOOLS = r"(?:python -m [^\s`]+|make [^\s`]+|depth-\w+|papermill|wandb)"
# a placeholder given for a config group (``data=<dataset>``, ``[data=... model=...]``): one of its options
GROUP_EXAMPLES = {"data": "nyu_sync", "model": "paper", "trainer": "cpu", "logger": "csv"}
# The code-block commands that cannot run on this machine, by a part of their line, and why (their lines say
# so too); every other one runs in test_every_command_in_a_code_block_runs_here_or_says_why_not.
NOT_RUN_HERE = {
    "+experiment=nyu_ablation": "the paper's ablation: 20 trainings on the full NYU sync set (GPU days)",
    "make sweep-demo": "20 CPU trainings of ~8 minutes each (tests/test_sweeps.py runs its sweep with tiny jobs)",
    "trainer=ddp": "16 GPUs on two Slurm nodes, reading from S3",
    "output=s3://": "an S3 bucket (a URL pack is tested on fsspec's memory filesystem: tests/test_pack_identity.py)",
    "depth_lightning.demo": "serves the page until stopped (tests/test_demo.py drives it in Chromium)",
    "benchmark predictions=": "another method's saved predictions of DIODE, ETH3D and ScanNet, none on this machine",
    "roots.eth3d=": "DIODE and ETH3D: no sample of either on this machine (../shared holds none)",
    "data=diode_outdoor": "DIODE outdoor: no sample on this machine",
}
TINY_TRAIN = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps"]
# a documented sweep's tiny jobs: two steps each, and on the synthetic scenes small splits
TINY_SWEEP = [*TINY_TRAIN, "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
HYDRA_ENTRY_POINTS = {
    f"depth_lightning.{n}": n for n in ("train", "evaluate", "predict", "score", "check", "export", "benchmark", "demo")
}


def _blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)


def documented_commands() -> list[tuple[str, str, bool]]:
    """``(where, command line, in a code block)`` for every command the docs show."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in _blocks(text):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"^\$ ", "", line.strip())
                if re.match(TOOLS, line):
                    found.append((doc.name, " ".join(line.split()), True))
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        found += [(doc.name, cmd, False) for cmd in re.findall(rf"`({TOOLS}[^`]*)`", prose)]
    return found


def words(command: str) -> list[str]:
    """The command as a shell passes it, with the doc's notation made concrete: its comment dropped,
    ``[optional]`` parts kept, ``<placeholder>`` and ``...`` given a value."""
    command = re.split(r"\s+#\s|\s+\(needs", command)[0]
    command = re.sub(r"(?<!=)\[([^\]]*)\]", r"\1", command)  # key=[a,b] is a list, not an option
    command = re.sub(r"<[^>]+>", "x", command).replace("...", "/data/x")
    argv = shlex.split(command)
    for i, word in enumerate(argv):
        key, _, value = word.partition("=")
        if key in GROUP_EXAMPLES and value in ("x", "/data/x"):
            argv[i] = f"{key}={GROUP_EXAMPLES[key]}"
    return argv


class _Parsed(Exception):
    pass


def parse_with_argparse(main, argv: list[str]) -> argparse.Namespace:
    """What the tool's own ``argparse`` parser makes of ``argv`` (the tool does not run)."""
    original = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", stop):
        try:
            main(argv)
        except _Parsed as parsed:
            return parsed.args[0]
    raise AssertionError("the tool did not parse its arguments")


def parse_hydra(entry: str, argv: list[str]):
    """What the entry point's Hydra makes of ``argv``: its parser, its overrides' grammar, and the
    composed config (a sweep's first value of each list)."""
    if entry == "train":
        argv = command_line(["train", *argv], "train")[1:]
    args = get_args_parser().parse_args(argv)  # argparse: exits 2 on an unrecognised argument
    overrides = OverridesParser.create().parse_overrides(args.overrides)
    first = []
    for o in overrides:
        if o.is_sweep_override():
            first.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        else:
            first.append(o.input_line)
    return compose_config(*first, config_name=entry)


def check_parses(command: str) -> None:
    argv = words(command)
    if argv[:2] == ["python", "-m"]:
        module, rest = argv[2], argv[3:]
        if module in HYDRA_ENTRY_POINTS:
            parse_hydra(HYDRA_ENTRY_POINTS[module], rest)
        elif module == "experiments.report":
            from experiments.report.__main__ import main

            parse_with_argparse(main, rest)
        elif module == "benchmarks":
            from benchmarks.__main__ import main

            parse_with_argparse(main, rest)
        elif module == "depth_lightning.prepare":
            from depth_lightning.prepare import main

            parse_with_argparse(main, rest)
        elif module == "experiments.freeze_bn":
            from experiments.freeze_bn import main

            parse_with_argparse(main, rest)
        elif module == "depth_lightning.models.summary":
            from depth_lightning.models.summary import _ARGS

            assert all(a.split("=", 1)[0] in _ARGS for a in rest), command
        else:
            raise AssertionError(f"{command}: no parser known for {module}")
    elif argv[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert argv[1] in targets, f"{command}: no such Makefile target"
    elif argv[0].startswith("depth-"):
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert argv[0] in scripts, f"{command}: not a console script of pyproject.toml"
    elif argv[0] == "papermill":
        notebook = json.loads((ROOT / argv[1]).read_text())
        tagged = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        names = {p for i, p in enumerate(argv) if i and argv[i - 1] == "-p"}
        assert tagged and all(f"{n} =" in "".join(tagged[0]["source"]) for n in names), command
    elif argv[0] == "wandb":
        import sys

        assert argv[1] == "sync", command  # the only W&B command the docs give: upload offline runs
        assert Path(sys.executable).with_name("wandb").is_file(), "the wandb CLI comes with the wandb package"


COMMANDS = documented_commands()


def test_the_docs_show_commands_and_every_one_is_found():
    assert len(COMMANDS) >= 30
    assert any("--multirun" in c for _, c, _ in COMMANDS)


@pytest.mark.parametrize(("where", "command"), [(w, c) for w, c, _ in COMMANDS], ids=[c[:60] for _, c, _ in COMMANDS])
def test_every_documented_command_parses(where, command):
    check_parses(command)


def test_a_command_that_does_not_parse_fails_the_check():
    with pytest.raises(SystemExit):  # Hydra's parser: overrides on both sides of a flag it does not know
        check_parses("python -m depth_lightning.evaluate ckpt_path=x --no-such-flag output=y")
    with pytest.raises(Exception, match="mismatched|no viable|token"):  # the overrides' grammar
        check_parses("python -m depth_lightning.train model.net.num_bins=[50,")
    with pytest.raises(Exception, match="Could not override|not in struct|Could not find"):  # composition
        check_parses("python -m depth_lightning.train model.net.no_such_key=3")
    with pytest.raises(SystemExit):  # an argparse tool
        check_parses("python -m experiments.report --no-such-option")
    with pytest.raises(AssertionError, match="no such Makefile target"):
        check_parses("make no-such-target")


def test_ci_runs_the_readmes_two_set_up_commands():
    readme = [c for w, c, block in COMMANDS if w == "README.md" and block]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for step in ("make install", "make test"):
        assert any(c.startswith(step) for c in readme) and step in ci


def not_run_here(command: str) -> str | None:
    return next((why for part, why in NOT_RUN_HERE.items() if part in command), None)


def _runnable():
    return [
        (w, c)
        for w, c, block in COMMANDS
        if block and not not_run_here(c) and not c.startswith(("make install", "make test"))
    ]


def test_what_does_not_run_here_is_a_short_list_each_entry_with_its_reason_on_the_docs_line():
    assert len(NOT_RUN_HERE) <= 10
    for part, why in NOT_RUN_HERE.items():
        lines = [c for _, c, block in COMMANDS if block and part in c]
        assert lines, f"{part!r} is listed as not run here but no documented command holds it"
        assert why and all(re.search(r"#.*(needs|long run)|\(needs", c) for c in lines), lines


def _miniature(argv: list[str], tmp_path: Path, checkpoint: Path) -> list[str]:
    """``argv`` with its dataset placeholders (``/data/...``, ``...``, ``my_frames``, ``nyu_model``) given
    miniature datasets in their published layout (tests/datasets.py), and the settings a miniature needs:
    nothing was prepared for it (``fill=none``), one KITTI drive (its own validation list)."""
    from tests.datasets import write_kitti, write_nyu_labelled, write_nyu_sync, write_rgbd_folder

    text, out = " ".join(argv), list(argv)
    # /data/<name>, ..., or no root at all (data=<dataset>): a dataset not on this machine
    placeholder = "data.dataset.root=/data/" in text or ("data.dataset.root=" not in text and "data=nyu_sync" in text)

    def root(path: Path, *settings: str) -> None:
        out[:] = [a for a in out if not a.startswith("data.dataset.root=")]
        out.extend([f"data.dataset.root={path}", *settings])

    if not placeholder:
        pass
    elif "nyu_paper" in text or "data=nyu_sync" in text:
        nyu = write_nyu_sync(tmp_path / "nyu_sync", {"s1": 2, "s2": 2, "s3": 2})
        shutil.copy(nyu / "train.txt", nyu / "nyudepthv2_train_files_with_gt.txt")  # the config's list names
        shutil.copy(nyu / "test.txt", nyu / "nyudepthv2_test_files_with_gt.txt")
        root(nyu, "data.dataset.fill=none")
    elif "kitti" in text:
        kitti = write_kitti(tmp_path / "kitti")
        (kitti["raw"] / "splits").mkdir()
        for split in ("train", "test"):
            shutil.copy(kitti["bts"], kitti["raw"] / "splits" / f"eigen_{split}_files.txt")
        root(kitti["raw"], "data.dataset.fill=none", f"data.dataset.val_list={kitti['monodepth2']}")
    elif "data=nyu " in text + " ":
        root(write_nyu_labelled(tmp_path / "nyu"))
    if "my_frames" in text:  # relative to where the command runs
        write_rgbd_folder(Path("my_frames"), {"train": {"a": 3, "b": 3, "c": 3}, "test": {"d": 2}})
    if "init_from=nyu_model" in text:
        from depth_lightning.export import export

        export(composed_for("export", tmp_path / "export", f"ckpt_path={checkpoint}", "format=hub", "output=nyu_model"))
    if "model=paper" in text or "_paper" in text:  # the paper's network on a CPU: its ResNet-152 as a ResNet-18
        out += ["model.net.backbone=resnet18", "model.net.pretrained=none", "trainer.accelerator=cpu"]
    return out


def _sweep(rest: list[str], sweep: Path) -> list[dict]:
    """A documented sweep, run as written with tiny jobs (Optuna: two trials) into ``sweep``; its jobs' records."""
    trials = ["hydra.sweeper.n_trials=2"] if any(a.startswith("hparams_search=") for a in rest) else []
    given = [a for a in rest if a != "--multirun" and not a.startswith("hydra.sweep.dir=")]
    synthetic = TINY_SWEEP_JOB if not any(a.startswith("data=") for a in given) else []
    tiny = [*TINY_SWEEP, *synthetic, *trials, f"hydra.sweep.dir={sweep}"]
    run_module("depth_lightning.train", *given, *tiny, "--multirun", cwd=sweep.parent)
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert records and all(r["status"] == "completed" and r["global_step"] == 2 for r in records), records
    return records


SWEEPS: dict[str, Path] = {}  # a sweep run by one command (kept for the session), for the report command after it


@pytest.mark.parametrize(("where", "command"), _runnable(), ids=[c[:60] for _, c in _runnable()])
def test_every_command_in_a_code_block_runs_here_or_says_why_not(
    where, command, tiny_checkpoint, tiny_run, tmp_path, tmp_path_factory, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = words(command)
    assert argv[:2] == ["python", "-m"], f"{where}: {command!r} runs nowhere: run it in a test, or list it"
    module, rest = argv[2], _miniature(argv[3:], tmp_path, tiny_checkpoint)
    if module == "depth_lightning.train" and "--multirun" in rest:
        kept = "synthetic_augment_ablation" in command  # its report is the next command: kept for the session
        sweep = (tmp_path_factory.mktemp("sweep") if kept else tmp_path) / "sweep"
        records = _sweep(rest, sweep)
        jobs = {"+experiment=synthetic_augment_ablation": 4, "seed=0,1": 4, "hparams_search=optuna": 2}
        assert len(records) == next(n for k, n in jobs.items() if k in rest or k in command), command
        SWEEPS[command] = sweep
        if "hparams_search=optuna" in rest:  # each trial's proposed learning rate, the best one recorded
            assert len({r["config"]["model"]["optimizer"]["lr"] for r in records}) == 2
            assert (sweep / "optimization_results.yaml").is_file()
    elif module == "depth_lightning.train":
        results = train_here(tmp_path / "run", *rest, *TINY_TRAIN)
        assert results["status"] == "completed" and results["global_step"] == 2
        if "test=true" in rest or "_paper" in command:  # tested: every metric a finite number
            assert all(np.isfinite(results["test"][m]) for m in ("abs_rel", "rmse", "d1")), results["test"]
        if "init_from=nyu_model" in rest:
            assert results["init_from"]["source"].endswith("nyu_model")
    elif module == "depth_lightning.evaluate":
        from depth_lightning.evaluate import evaluate

        given = [a for a in rest if not a.startswith("ckpt_path=")]
        out = tmp_path / "eval.json"
        evaluate(composed_for("evaluate", tmp_path, f"ckpt_path={tiny_checkpoint}", *given, f"output={out}"))
        assert json.loads(out.read_text())["images"] > 0
    elif module == "depth_lightning.benchmark":
        from depth_lightning.benchmark import benchmark

        given = [a for a in rest if not a.startswith("ckpt_path=")]
        if any(a.startswith("roots.tum=") for a in given):  # the real TUM frame, as TUM publishes it
            from tests.datasets import write_tum

            tum = SHARED / "realdata" / "other" / "tum_rgbd"
            if not tum.is_dir():
                pytest.skip(f"the real TUM sample this command reads is not at {tum}")
            write_tum(tmp_path / "tum", tum / "TUM_color.png", tum / "TUM_depth.png")
            given = [f"roots.tum={tmp_path / 'tum'}" if a.startswith("roots.tum=") else a for a in given]
        summary = benchmark(composed_for("benchmark", tmp_path, f"ckpt_path={tiny_checkpoint}", *given))
        assert summary["rows"] and (tmp_path / "benchmark.md").is_file()
        if any(a.startswith("roots.tum=") for a in given):  # TUM scored; DIODE, absent here, named as missing
            assert [r["dataset"] for r in summary["rows"]] == ["tum"] and "diode" in summary["missing"]
            assert 0 < summary["rows"][0]["abs_rel"] < 10 and summary["rows"][0]["images"] == 1
    elif module == "depth_lightning.predict":
        from PIL import Image

        from depth_lightning.predict import predict

        (tmp_path / "in").mkdir()
        Image.new("RGB", (96, 64), (90, 120, 150)).save(tmp_path / "in" / "a.png")
        cfg = composed_for("predict", tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={tmp_path / 'in'}",
                           f"output={tmp_path / 'out'}")  # fmt: skip
        assert predict(cfg) == (1, []) and (tmp_path / "out" / "a.png_depth.png").is_file()
    elif module == "depth_lightning.score" and "data=kitti" in rest:
        from depth_lightning.data.io import write_depth_png
        from depth_lightning.score import score_and_record

        data = [a for a in rest if a.startswith("data")]
        frames = build(compose_config(*data).data, "data").build("test")
        for i in range(len(frames)):  # the projected ground truth itself, as 16-bit PNGs of 1/256 m
            (tmp_path / "predictions" / frames.frame_name(i)).parent.mkdir(parents=True, exist_ok=True)
            write_depth_png(tmp_path / "predictions" / f"{frames.frame_name(i)}.png", frames.load(i)[1], 256.0)
        given = [a for a in rest if not a.startswith("predictions=")]
        out = [f"predictions={tmp_path / 'predictions'}", f"output={tmp_path / 'score.json'}"]
        found = score_and_record(composed_for("score", tmp_path / "run", *given, *out, "invalid_predictions=clip"))
        assert found["test"]["images"] == len(frames) == 3  # the frames the list gives depth
        assert found["test"]["abs_rel"] < 2e-4 and found["test"]["d1"] == 1  # quantised to 1/256 m: read at 256
    elif module == "depth_lightning.score":
        from depth_lightning.score import score_and_record
        from tests.datasets import write_nyu_sync

        root = write_nyu_sync(tmp_path / "nyu", {"a": 2, "b": 1})
        folder = tmp_path / "predictions"  # the ground truth itself, as 16-bit millimetre PNGs (predict's format)
        for line in (root / "test.txt").read_text().split("\n")[:-1]:
            rgb, depth = line.split()[:2]
            (folder / rgb).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / depth, folder / f"{rgb.rsplit('.', 1)[0]}.png")
        given = [a for a in rest if not a.startswith(("predictions=", "data.dataset.root="))]
        found = score_and_record(composed_for(
            "score", tmp_path / "run", *given, f"predictions={folder}", f"data.dataset.root={root}",
            f"data.dataset.train_list={root / 'train.txt'}", f"data.dataset.test_list={root / 'test.txt'}",
            f"output={tmp_path / 'score.json'}", "invalid_predictions=clip",
        ))  # fmt: skip
        assert found["test"]["images"] == 2 and found["test"]["abs_rel"] == 0 and found["test"]["d1"] == 1
        assert json.loads((tmp_path / "score.json").read_text())["test"] == found["test"]
    elif module == "depth_lightning.export":
        from depth_lightning.export import export
        from depth_lightning.inference.loading import load_model

        given = [a for a in rest if not a.startswith(("ckpt_path=", "output="))]
        out = tmp_path / "exported"
        export(composed_for("export", tmp_path, f"ckpt_path={tiny_checkpoint}", *given, f"output={out}"))
        folder = out / "model" if "format=space" in given else out
        config = json.loads((folder / "config.json").read_text())
        assert config["format"] == 2 and "_target_" not in json.dumps(config)
        original, exported = load_model(tiny_checkpoint), load_model(folder)
        for key, value in original.state_dict().items():  # the weights, tensor for tensor
            assert torch.equal(exported.state_dict()[key], value), key
        assert "model-index" in (folder / "README.md").read_text()
        if "format=space" in given:
            assert "sdk: gradio" in (out / "README.md").read_text() and (out / "app.py").is_file()
            assert (out / "requirements.txt").read_text() == "depth_lightning[demo]\n"
    elif module == "experiments.report" and "synthetic_augment_ablation" in command:  # the sweep just before it
        from experiments.report.__main__ import main

        sweep = next((p for c, p in SWEEPS.items() if c.split("+experiment=")[-1].split()[0] in command), None)
        if sweep is None:  # its sweep ran on another worker: run it here
            experiment = re.search(r"logs/(\w+)/multiruns", command).group(1)
            sweep = tmp_path / "sweep"
            _sweep([f"+experiment={experiment}", "--multirun"], sweep)
        assert main([str(sweep), "--out", str(tmp_path / "report")]) == 0
        report = (tmp_path / "report" / "report.md").read_text()
        section = report.split("## Extra augmentations against the paper's, paired on the same test images")[1]
        # the extra (GaussNoise) against the paper's alone, over both seeds, a signed difference per metric
        assert re.search(r"^\| paper \+ GaussNoise - paper \(full, K = \d+\) \| 2 \| \d+ \| [+-]\d", section, re.M), (
            section
        )
    elif module == "experiments.report":
        from experiments.report.__main__ import main

        copy_records(tiny_run, tmp_path / "runs" / "run")
        assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
        assert (tmp_path / "report" / "report.md").is_file()
    elif module == "depth_lightning.check" and "data.dataset.root=nyu " not in command:
        from depth_lightning.check import main_check

        assert main_check(composed_for("check", tmp_path, *rest)) == 0  # every frame read, nothing wrong
        printed = " ".join(capsys.readouterr().out.split())
        for split, frames in (("train", 9 if "my_frames" in command else 6), ("test", 2)):
            assert re.search(rf"\b{split} {frames} ", printed), printed  # each split's frames, counted
    elif module == "depth_lightning.check":
        from depth_lightning.check import main_check

        demo = SHARED / "realdata" / "nyu" / "sync" / "metric3d_nyu_demo"
        if not demo.is_dir():
            pytest.skip(f"the real NYU samples this command reads are not at {demo}")
        shutil.copytree(demo, tmp_path / "nyu")
        lines = [f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579" for k in ("00000", "00050", "00100")]
        (tmp_path / "nyu" / "train.txt").write_text("\n".join(lines[:2]) + "\n")
        (tmp_path / "nyu" / "test.txt").write_text(lines[2] + "\n")
        _divide_one_map_by_100(tmp_path / "nyu" / "depth" / "sync_depth_00050.png")  # as the docs' example
        relative = [re.sub(r"=nyu(?=/|$)", f"={tmp_path / 'nyu'}", a) for a in rest]
        assert main_check(composed_for("check", tmp_path, *relative)) == 1
        shown = next(b for b in _blocks((ROOT / "docs" / where).read_text()) if command in _flat(b))
        printed = " ".join(capsys.readouterr().out.split())
        rows = [ln for ln in shown.splitlines() if ln.startswith(("train ", "test ", "FAILED"))]
        assert len(rows) == 3, shown
        for row in rows:
            assert " ".join(row.split()) in printed, row  # the output the docs show
    else:
        raise AssertionError(f"{where}: {command!r}: not run by this test; run it here, or mark it")


def _flat(block: str) -> str:
    return " ".join(block.replace("\\\n", " ").replace("$ ", "").split())


def _divide_one_map_by_100(path: Path) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray((np.array(Image.open(path)) // 100).astype(np.uint16)).save(path)


def test_every_console_script_is_an_entry_points_main_and_is_installed():
    import importlib
    import sys

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    documented = {c.split()[0] for _, c, _ in COMMANDS if c.startswith("depth-")}
    assert documented <= set(scripts), documented - set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
        installed = Path(sys.executable).with_name(name)  # written by `make install` (pip install -e .)
        assert installed.is_file() and f"from {module} import {function}" in installed.read_text(), name


@pytest.mark.parametrize(
    ("script", "key"),
    [("depth-train", "optimized_metric"), ("depth-evaluate", "ckpt_path"), ("depth-predict", "input"),
     ("depth-score", "predictions"), ("depth-check", "splits"), ("depth-export", "format"),
     ("depth-benchmark", "datasets"), ("depth-demo", "port")],
)  # fmt: skip
def test_each_console_script_runs_and_composes_its_own_config(script, key, tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.helpers import user_env

    installed = Path(sys.executable).with_name(script)
    proc = subprocess.run(
        [str(installed), "--cfg", "job"], cwd=tmp_path, env={**user_env(), "DEPTH_LIGHTNING_LOGS": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    composed = yaml.safe_load(proc.stdout)
    assert key in composed, sorted(composed)  # its own config, through the entry point's wrapper
