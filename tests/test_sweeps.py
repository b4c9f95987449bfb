"""Ablation sweeps end to end (joblib and submitit launchers), the report and the notebook."""

import csv
import json
import os
from pathlib import Path

import pytest

from experiments import report
from experiments.report.__main__ import main as report_main
from tests.helpers import (
    ROOT,
    SHARED,
    TINY_SWEEP_JOB,
    assert_consistent_results,
    built,
    composed,
    job_folder,
    run_module,
)

TINY = [*TINY_SWEEP_JOB, "trainer.max_steps=4", "trainer.log_every_n_steps=1"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_builds(name):
    import torch

    on_this_machine = [] if torch.cuda.is_available() else ["trainer.accelerator=cpu"]
    # every object of the experiment but the network's ImageNet weights (not on this machine)
    cfg, datamodule, module, trainer = built(f"+experiment={name}", "model.net.pretrained=none", *on_this_machine)
    # what was built is what the experiment's config says (not the defaults it overrides)
    net, backbone = cfg.model.net, module.net.backbone
    blocks = {"resnet18": 2, "resnet34": 6, "resnet50": 6, "resnet101": 23, "resnet152": 36}
    assert module.bins.num_bins == net.num_bins and backbone.name == net.backbone
    assert len(backbone.layer3) == blocks[net.backbone]
    assert backbone.layer4[-1].conv2.dilation == ((4, 4) if net.dilated else (1, 1))  # Sec. 3.1
    assert (module.bins.d_min, module.bins.d_max) == (cfg.data.depth_min, cfg.data.depth_max)
    assert datamodule.name == cfg.data.name and trainer.max_steps == cfg.trainer.max_steps
    base = composed()
    assert cfg.task_name == name != base.task_name
    assert cfg.model != base.model or cfg.data != base.data, "the experiment changes the model or the data"
    if name in ("nyu_ablation", "kitti_ablation"):  # the paper's learned 8x8 deconvolution
        assert cfg.model.net.upsample == "learned" and cfg.test_checkpoint == "last"


def test_paper_experiments_carry_the_papers_numbers():
    nyu = composed("+experiment=nyu_paper")
    assert (nyu.model.net.backbone, nyu.model.net.num_bins, nyu.data.height, nyu.data.width) == (
        "resnet152",
        200,
        240,
        320,
    )
    assert (nyu.data.batch_size, nyu.trainer.accumulate_grad_batches, nyu.trainer.max_steps) == (1, 8, 50000)
    assert nyu.data.augment.scale == [1.3, 1.5] and nyu.data.augment.rotate == 5.0
    kitti = composed("+experiment=kitti_paper")
    assert (kitti.model.net.num_bins, kitti.data.height, kitti.data.width) == (50, 188, 620)
    protocol = kitti.data.protocol
    assert (list(protocol.caps), protocol.region, kitti.data.dataset.frame_size) == ([80.0, 50.0], "paper", None)
    assert nyu.test_checkpoint == kitti.test_checkpoint == "last"  # Sec. 3.4: the model after 50k iterations


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("sweep")
    run_module(
        "depth_lightning.train",
        "+experiment=synthetic_ablation",
        "--multirun",  # overrides on both sides of the flag, as a user writes them
        "hydra/launcher=joblib",
        "model.net.num_bins=20,40",
        *TINY,
        f"hydra.sweep.dir={work / 'sweep'}",
        cwd=work,
    )
    return work / "sweep"


@pytest.mark.slow
def test_ablation_sweep_saves_both_decoders_for_every_variant(sweep):
    names = sorted(p.name.rsplit("-", 1)[0] for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert names == [
        "full-K20",
        "full-K40",
        "no_concat-K20",
        "no_concat-K40",
        "no_dilation-K20",
        "no_dilation-K40",
        "no_dilation_no_concat-K20",
        "no_dilation_no_concat-K40",
    ]
    for name in names:
        results = json.loads((job_folder(sweep, name) / "metrics.json").read_text())
        assert results["status"] == "completed"
        assert_consistent_results(results)
        model = results["config"]["model"]["net"]
        variant, k = name.rsplit("-K", 1)
        assert (model["dilated"], model["fusion"]) == {
            "full": (True, True),
            "no_dilation": (False, True),
            "no_concat": (True, False),
            "no_dilation_no_concat": (False, False),
        }[variant]
        assert model["num_bins"] == int(k)
        assert (job_folder(sweep, name) / "bin_distributions.npz").is_file()
        assert (job_folder(sweep, name) / "confusion_val.npy").is_file()


@pytest.mark.slow
def test_sweep_runs_share_one_wandb_group(sweep):
    from tests.wandb_reader import logged

    seen = []
    for name in ("full-K20", "no_dilation-K40"):
        run = logged(next((job_folder(sweep, name) / "wandb").glob("offline-run-*")))
        seen.append(run["run"])
        assert run["config"]["model"]["net"]["num_bins"] in (20, 40)  # the run config, once
        keys = {k for row in run["history"] for k in row}
        assert {"val/soft/abs_rel", "val/hard/abs_rel", "val/pixel_acc"} <= keys
        assert {"val/bin_distributions/_type", "val/confusion/_type"} <= keys  # Fig. 6 and Fig. 7
    assert seen[0]["group"] == seen[1]["group"] == f"synthetic_ablation-{sweep.name}"
    assert [s["job_type"] for s in seen] == ["full-K20", "no_dilation-K40"]


def _png_size(path):
    from PIL import Image

    return Image.open(path).size


def _paper_table(number):
    """The rows of the paper's Table ``number`` in ../shared/paper/tables.md: method -> cells."""
    text = SHARED / "paper" / "tables.md"
    block = text.read_text().split(f"## Table {number}\n", 1)[1].split("## ", 1)[0]
    rows = [ln.strip("|").split("|") for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln]
    return {cells[0].strip().replace("Ours", "Li et al. (ours)"): [c.strip() for c in cells[1:]] for cells in rows[1:]}


@pytest.mark.slow
def test_report_builds_tables_and_figures(sweep, tmp_path, capsys):
    assert report_main([str(sweep), "--out", str(tmp_path / "report"), "--wandb"]) == 0
    printed = capsys.readouterr().out
    assert "Table 3, components (ours: synthetic, K = 40; paper: NYU v2)" in printed
    from tests.wandb_reader import logged

    wandb_run = logged(Path(printed.split("logged to W&B: ")[1].split()[0]))  # the sweep's group, too
    assert wandb_run["run"]["group"] == f"synthetic_ablation-{sweep.name}" and wandb_run["run"]["job_type"] == "report"
    keys = {k for row in wandb_run["history"] for k in row}
    assert {"report/table3/_type", "report/fig6/_type", "report/fig7/_type"} <= keys
    result = report.build_report([sweep], tmp_path / "again")
    for name in ("table1", "table2", "table3", "table4"):
        assert f"## Table {name[-1]}," in printed
        # the three formats hold the same rows, those of the report's own table
        rows = list(csv.DictReader(open(tmp_path / "report" / f"{name}.csv")))
        assert [(r[next(iter(r))], r["source"]) for r in rows] == [(str(r["row"]), r["source"]) for r in result[name]]
        md = (tmp_path / "report" / f"{name}.md").read_text().splitlines()
        tex = (tmp_path / "report" / f"{name}.tex").read_text()
        body = [ln for ln in md if ln.startswith("| ")][2:]  # after the header and its separator: one per row
        assert [ln.split(" | ")[0].lstrip("| ") for ln in body] == [r[next(iter(r))] for r in rows]
        assert tex.count(r" \\") == len(rows) + 1 and r"\begin{tabular}" in tex and r"\end{table}" in tex
    assert _png_size(tmp_path / "report" / "fig6.png")[0] > 200 and _png_size(tmp_path / "report" / "fig7.png")[0] > 200

    def rows(table, source):
        return {r["row"]: r for r in result[table] if r["source"] == source}

    ours = json.loads((job_folder(sweep, "full-K40") / "metrics.json").read_text())["test"]
    assert rows("table3", "ours")["Hard-max inference"]["abs_rel"] == ours["hard/abs_rel"]
    assert rows("table3", "ours")["Soft-weighted-sum (full model)"]["abs_rel"] == ours["soft/abs_rel"]
    third = json.loads((job_folder(sweep, "no_dilation_no_concat-K40") / "metrics.json").read_text())["test"]
    assert rows("table3", "ours")["No dilation, no concat (Sec. 5.1)"]["d1"] == third["soft/d1"]
    # the paper's numbers beside ours (Tables 1-4 of the paper, as fractions)
    assert rows("table3", "paper")["No dilation"]["d1"] == 0.7802
    assert rows("table3", "paper")["Hard-max inference"]["rmse"] == 0.531
    assert rows("table4", "paper")[200]["pixel_acc"] == 0.25 and rows("table4", "ours")[40]["abs_rel"] is not None
    assert rows("table1", "paper")["Laina et al. [12]"]["abs_rel"] == 0.127
    assert rows("table1", "paper")["Li et al. (ours)"]["rmse"] == 0.505
    assert rows("table2", "paper")["Li et al. (ours) cap 50m"]["rmse"] == 3.906
    assert rows("table2", "paper")["Godard et al. [14] cap 50m"]["d1"] == 0.818
    # synthetic runs are not the paper's data: shown, but no difference is computed
    assert not [r for r in result["table3"] if r["source"] == report.DIFF]
    assert rows("table1", "ours")["Li et al. (ours)"]["d1"] is None  # no NYU run in a synthetic sweep
    assert "full-K200" in result["missing"] and "no_dilation_no_concat-K50" in result["missing"]
    # last, as it may skip: the paper's own numbers, read from its text in ../shared (a user's clone has none)
    if not (SHARED / "paper" / "tables.md").is_file():
        pytest.skip(f"the paper's tables are not at {SHARED / 'paper' / 'tables.md'}: the rows above are checked")
    table2 = list(csv.DictReader(open(tmp_path / "report" / "table2.csv")))
    kitti = {r[next(iter(r))]: r for r in table2 if r["source"] == "paper"}  # first column: the method
    paper = _paper_table(2)
    assert len(paper) >= 3
    for method, values in paper.items():
        row = kitti[method]
        assert float(row["d1"]) == pytest.approx(float(values[1].rstrip("%")) / 100), method
        assert float(row["abs_rel"]) == float(values[4]) and float(row["rmse"]) == float(values[6]), method


@pytest.mark.slow
def test_the_notebook_takes_its_sweep_as_a_parameter_from_any_directory(sweep, tmp_path):
    import papermill

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "ablation_report.ipynb"),
        str(out),
        parameters={"sweep": str(sweep)},
        cwd=str(elsewhere),
        kernel_name="python3",
        progress_bar=False,
    )
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    text = "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
        for c in cells
        for o in c["outputs"]
    )
    assert f"8 finished runs in {sweep}" in text and "Table 3" in text
    assert any("image/png" in o.get("data", {}) for c in cells for o in c["outputs"])
    assert os.listdir(elsewhere) == []  # nothing written where it was started


def test_report_on_bad_sweeps_says_what_is_wrong(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_main([str(empty)]) == 1 and "no finished run" in capsys.readouterr().err
    killed = tmp_path / "sweep" / "0_full-K50"
    (killed / ".hydra").mkdir(parents=True)
    (killed / "metrics.json").write_text(json.dumps({"status": "running", "config": {}}))
    never = tmp_path / "sweep" / "1_full-K100"
    (never / ".hydra").mkdir(parents=True)
    done = tmp_path / "sweep" / "2_full-K200"
    done.mkdir()
    metrics = {f"{d}/{k}": 0.5 for d in ("soft", "hard") for k in ("d1", "d2", "d3", "abs_rel", "log10", "rmse")}
    (done / "metrics.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "config": {
                    "task_name": "other",
                    "data": {"name": "nyu_sync"},
                    "model": {"net": {"dilated": True, "fusion": True, "num_bins": 200}},
                },
                "test": metrics | {"pixel_acc": 0.2},
            }
        )
    )
    result = report.build_report([tmp_path / "sweep"], tmp_path / "out")
    text = "\n".join(result["problems"])
    assert "0_full-K50: status 'running'" in text and "1_full-K100: no metrics.json" in text
    ours = {r["row"]: r for r in result["table3"] if r["source"] == "ours"}
    assert ours["Soft-weighted-sum (full model)"]["abs_rel"] == 0.5 and ours["No dilation"]["abs_rel"] is None
    # an NYU run: the difference to the paper is computed (0.5 - 0.139), also in Table 1
    diff = {r["row"]: r for r in result["table3"] if r["source"] == report.DIFF}
    assert diff["Soft-weighted-sum (full model)"]["abs_rel"] == pytest.approx(0.5 - 0.139)
    assert diff["No dilation"]["abs_rel"] is None
    table1 = {r["source"]: r for r in result["table1"] if r["row"] == "Li et al. (ours)"}
    assert table1["ours"]["rmse"] == 0.5 and table1[report.DIFF]["rmse"] == pytest.approx(0.5 - 0.505)


@pytest.mark.slow
def test_submitit_local_launcher_runs_jobs(tmp_path):
    run_module(
        "depth_lightning.train",
        "+experiment=synthetic_ablation",
        "hydra/launcher=submitit_local",
        "variant=full",
        "model.net.num_bins=20",
        *TINY,
        "logger=csv",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "--multirun",
        cwd=tmp_path,
    )
    for name in ("full-K20",):
        assert json.loads((job_folder(tmp_path / "sw", name) / "metrics.json").read_text())["status"] == "completed"
    assert list((tmp_path / "sw" / ".submitit").glob("*/*_result.pkl"))
