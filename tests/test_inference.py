"""The Python inference API (DepthEstimator), flip test-time augmentation, point clouds, one-line errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from depth_lightning.inference import DepthEstimator
from depth_lightning.inference.pointcloud import back_project, intrinsics_for, write_ply
from tests.helpers import composed_for, run_module


@pytest.fixture(scope="module")
def estimator(tiny_checkpoint):
    return DepthEstimator.from_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 255, (50, 83, 3), dtype=np.uint8)


def test_pil_numpy_and_tensor_inputs_give_the_same_metric_depth_at_the_inputs_size(estimator, photo):
    from_array = estimator.predict(photo)
    from_pil = estimator.predict(Image.fromarray(photo))
    batch = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    from_tensor = estimator.predict(torch.cat([batch, batch]))
    assert from_array["depth"].shape == from_array["uncertainty"].shape == (50, 83)
    assert isinstance(from_array["depth"], np.ndarray) and isinstance(from_tensor["depth"], torch.Tensor)
    np.testing.assert_array_equal(from_array["depth"], from_pil["depth"])
    assert from_tensor["depth"].shape == (2, 50, 83)
    np.testing.assert_allclose(from_tensor["depth"][1].numpy(), from_array["depth"], rtol=1e-6)
    bins = estimator.bins
    assert (from_array["depth"] >= bins.d_min * 0.999).all() and (from_array["depth"] <= bins.d_max * 1.001).all()


def test_the_soft_depth_is_eq5_over_the_returned_distribution(estimator, photo):
    out = estimator.predict(photo, upsample=False, distribution=True)
    probs, centres = out["probabilities"], out["log_centres"]
    assert probs.shape[0] == estimator.bins.num_bins and out["depth"].shape == probs.shape[1:]
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["depth"], np.exp(np.einsum("khw,k->hw", probs, centres)), rtol=1e-5)
    hard = estimator.predict(photo, decoder="hard", upsample=False)["depth"]
    np.testing.assert_allclose(hard, np.exp(centres[probs.argmax(0)]), rtol=1e-6)


@pytest.mark.parametrize("decoder", ["soft", "hard"])
def test_flip_tta_averages_the_two_views_in_log_depth(estimator, photo, decoder):
    direct = estimator.predict(photo, decoder=decoder)["depth"]
    mirrored = estimator.predict(np.ascontiguousarray(photo[:, ::-1]), decoder=decoder)["depth"][:, ::-1]
    both = estimator.predict(photo, decoder=decoder, flip=True)["depth"]
    np.testing.assert_allclose(both, np.exp((np.log(direct) + np.log(mirrored)) / 2), rtol=1e-5)
    assert not np.allclose(both, direct, rtol=1e-3)  # the flipped view does change the answer


def test_a_depth_map_given_as_the_image_is_refused(estimator):
    depth16 = Image.fromarray(np.full((40, 60), 1500, np.uint16))
    with pytest.raises(ValueError, match="not an RGB photograph"):
        estimator.predict(depth16)


def test_point_cloud_holds_the_3d_points_of_a_known_depth(tmp_path):
    from plyfile import PlyData

    depth = np.full((4, 6), 2.0)
    depth[0, 0] = 0  # no depth: no point
    depth[3, 5] = 4.0
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[3, 5] = (255, 10, 20)
    k = (100.0, 50.0, 2.5, 1.5)
    assert write_ply(tmp_path / "p.ply", depth, rgb, k) == 23
    vertex = PlyData.read(str(tmp_path / "p.ply"))["vertex"]
    last = vertex[len(vertex.data) - 1]  # pixel (v=3, u=5): x = (5 - 2.5) * 4 / 100, y = (3 - 1.5) * 4 / 50
    assert (last["x"], last["y"], last["z"]) == pytest.approx((0.1, 0.12, 4.0))
    assert (last["red"], last["green"], last["blue"]) == (255, 10, 20)
    centre = back_project(np.full((3, 3), 1.0), intrinsics_for((3, 3), fov_deg=90.0))[1, 1]
    assert centre == pytest.approx((0.0, 0.0, 1.0))  # the optical axis
    assert intrinsics_for((480, 640), fov_deg=90.0)[0] == pytest.approx(320.0)  # f = (W/2) / tan(45°)


def test_predict_names_never_collide_and_every_skipped_file_is_named(tiny_checkpoint, tmp_path, estimator, capsys):
    from depth_lightning.predict import predict

    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(inputs / "scene.png")
    Image.fromarray(rng.integers(0, 255, (41, 133, 3), dtype=np.uint8)).save(inputs / "scene.jpg")
    Image.fromarray(np.full((30, 40), 2000, np.uint16)).save(inputs / "depth.png")  # a depth map by mistake
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    cfg = composed_for(
        "predict", tmp_path, f"ckpt_path={tiny_checkpoint}", f"input={inputs}", f"output={out}", "pointcloud=true",
        "fov_deg=70",
    )  # fmt: skip
    written, errors = predict(cfg)  # the command exits 1 when errors is not empty
    printed = capsys.readouterr()
    assert written == 2 and len(errors) == 2  # what could be written is written; the failures are named
    assert "broken.png: corrupt or unreadable image" in printed.err and "depth.png: a 16-bit" in printed.err
    assert f"wrote 2 prediction(s) to {out.resolve()}" in printed.out
    assert "skipped 1 file(s) that are not images: notes.txt" in printed.out
    for name, size in (("scene.png", (70, 90)), ("scene.jpg", (41, 133))):
        png = np.array(Image.open(out / f"{name}_depth.png"))
        assert png.dtype == np.uint16 and png.shape == size
        expected = estimator.predict(Image.open(inputs / name))["depth"]
        assert np.abs(png / 1000.0 - expected).max() <= 1e-3
        assert np.load(out / f"{name}_uncertainty.npy").shape == size
        _assert_points_of(out / f"{name}_points.ply", png / 1000.0, fov_deg=70)
    assert not list(out.glob("broken*")) and not list(out.glob("depth.png*"))


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("depth_lightning.predict", ["ckpt_path=x.ckpt", "input=missing"], "input='missing': no such file or folder"),
        ("depth_lightning.evaluate", ["ckpt_path=missing.ckpt"], "missing.ckpt"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, module, args, message):
    proc = run_module(module, *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.slow
def test_a_wheel_carries_its_configs_and_its_entry_points_compose_them(tmp_path):
    import os
    import subprocess
    import sys
    import zipfile

    from tests.helpers import ROOT

    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("depth_lightning-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"depth_lightning/conf/train.yaml", "depth_lightning/conf/data/nyu.yaml"} <= set(names)
    assert "experiments/paper_numbers.yaml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_module(
        "depth_lightning.train", "--cfg", "job", "model=paper", cwd=elsewhere, env={"PYTHONPATH": str(site)}
    )
    assert "backbone: resnet152" in proc.stdout
    probe = "import depth_lightning.core.config as c; print(c.CONF_DIR)"
    where = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(site / "depth_lightning" / "conf")


def _assert_points_of(ply, depth, fov_deg=None, intrinsics=None):
    """The PLY holds one point per pixel: (u - cx) z / fx, (v - cy) z / fy, z, with the camera given
    or (fov_deg) a pinhole of that horizontal field of view centred on the image, computed here."""
    import math

    from plyfile import PlyData

    h, w = depth.shape
    if intrinsics is None:
        f = (w / 2) / math.tan(math.radians(fov_deg) / 2)
        intrinsics = (f, f, (w - 1) / 2, (h - 1) / 2)
    fx, fy, cx, cy = intrinsics
    vertex = PlyData.read(str(ply))["vertex"]
    assert len(vertex.data) == h * w
    v, u = np.mgrid[:h, :w]
    z = vertex["z"].reshape(h, w)
    np.testing.assert_allclose(z, depth, atol=6e-4)  # the PNG holds millimetres
    np.testing.assert_allclose(vertex["x"].reshape(h, w), (u - cx) * z / fx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vertex["y"].reshape(h, w), (v - cy) * z / fy, rtol=1e-5, atol=1e-6)


def test_predict_with_flip_intrinsics_and_the_default_field_of_view(tiny_checkpoint, tmp_path, estimator):
    from depth_lightning.predict import predict

    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb = np.random.default_rng(1).integers(0, 255, (60, 84, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(inputs / "a.png")
    common = [f"ckpt_path={tiny_checkpoint}", f"input={inputs}", "pointcloud=true"]
    assert predict(composed_for("predict", tmp_path, *common, f"output={tmp_path / 'fov'}")) == (1, [])
    depth = np.array(Image.open(tmp_path / "fov" / "a.png_depth.png")) / 1000.0
    _assert_points_of(tmp_path / "fov" / "a.png_points.ply", depth, fov_deg=60)  # the default
    k = [500.0, 480.0, 40.0, 31.0]
    flip = predict(composed_for("predict", tmp_path, *common, f"output={tmp_path / 'k'}", "flip=true",
                                f"intrinsics=[{','.join(map(str, k))}]"))  # fmt: skip
    assert flip == (1, [])
    flipped = np.array(Image.open(tmp_path / "k" / "a.png_depth.png")) / 1000.0
    _assert_points_of(tmp_path / "k" / "a.png_points.ply", flipped, intrinsics=k)
    # flip=true: the direct and the mirrored views' depths averaged in log depth (a geometric mean)
    direct = estimator.predict(rgb)["depth"]
    mirrored = estimator.predict(np.ascontiguousarray(rgb[:, ::-1]))["depth"][:, ::-1]
    np.testing.assert_allclose(flipped, np.sqrt(direct * mirrored), rtol=2e-3, atol=6e-4)
    assert not np.allclose(flipped, depth, rtol=1e-3), "flip changed the prediction"
    # the colour maps beside the depth: RGB at the image's size
    for suffix in ("_depth_color.png", "_uncertainty.png"):
        image = np.array(Image.open(tmp_path / "k" / f"a.png{suffix}"))
        assert image.shape == (60, 84, 3) and image.dtype == np.uint8 and image.std() > 0, suffix
    unc = np.load(tmp_path / "k" / "a.png_uncertainty.npy")
    assert unc.shape == (60, 84) and (unc > 0).all()
