"""Each depth encoding against an independent decode: the real samples of ../shared/realdata/other
(TUM, SUN RGB-D, Middlebury, Hypersim) value for value, and files written here in the published
format for the datasets without a sample (DIODE, ETH3D, iBims-1, ScanNet, Sintel, Virtual KITTI 2)."""

import re
import struct

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.encodings import check_encoding, read_depth, read_image
from tests.helpers import SHARED

OTHER = SHARED / "realdata" / "other"
needs_other = pytest.mark.skipif(not OTHER.is_dir(), reason=f"real samples of other datasets not present at {OTHER}")


def read(path, encoding, companions=None, **options):
    name, options = check_encoding({"encoding": encoding, **options})
    return read_depth(path, name, options, companions or {})


def uint16_png(path, values):
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


# -- real samples ----------------------------------------------------------------------------------
@needs_other
def test_tum_is_value_over_5000():
    path = OTHER / "tum_rgbd" / "TUM_depth.png"
    raw = np.array(Image.open(path)).astype(np.float64)
    ours = read(path, "png", scale=5000.0)
    np.testing.assert_array_equal(ours, (raw / 5000).astype(np.float32))
    valid = ours > 0
    assert valid.mean() == pytest.approx(0.808, abs=1e-3)  # SOURCES.md: 80.8 % valid, 1.46..9.33 m
    assert ours[valid].min() == pytest.approx(1.46, abs=0.01) and ours.max() == pytest.approx(9.33, abs=0.01)


@needs_other
def test_sun_rgbd_raw_depth_is_rotated_back_by_three_bits():
    path = OTHER / "sun_rgbd" / "SUN_depth.png"
    v = np.array(Image.open(path)).astype(np.uint16)
    # the SUN RGB-D toolbox: bitor(bitshift(depth, -3), bitshift(depth, 16-3)) in uint16 arithmetic
    millimetres = np.bitwise_or(np.right_shift(v, 3), np.left_shift(v, 13))
    ours = read(path, "png_bitshift")
    np.testing.assert_array_equal(ours, (millimetres.astype(np.float64) / 1000).astype(np.float32))
    valid = ours > 0
    assert ours[valid].min() == pytest.approx(1.06, abs=0.01) and ours.max() == pytest.approx(9.87, abs=0.01)
    # read as plain millimetres, the rotated values would be nonsense: most above 10 m
    assert (read(path, "png", scale=1000.0)[valid] > 10).mean() > 0.5


@needs_other
def test_middlebury_disparity_becomes_depth_through_its_calibration():
    folder = OTHER / "middlebury2014" / "trainingQ" / "Motorcycle"
    data = (folder / "disp0GT.pfm").read_bytes()
    tokens = data.split(b"\n", 3)  # "Pf", "W H", scale, then the rows, bottom row first
    width, height = map(int, tokens[1].split())
    assert tokens[0] == b"Pf" and float(tokens[2]) < 0  # little-endian
    disparity = np.frombuffer(tokens[3], dtype="<f4").reshape(height, width)[::-1]
    calib = dict(re.findall(r"^(\w+)=(.*)$", (folder / "calib.txt").read_text(), flags=re.M))
    f = float(calib["cam0"].split()[0].lstrip("["))
    expected = float(calib["baseline"]) * f / (disparity.astype(np.float64) + float(calib["doffs"])) / 1000
    expected = np.where(np.isfinite(disparity), expected, 0).astype(np.float32)
    ours = read(folder / "disp0GT.pfm", "pfm_disparity", {"calib": folder / "calib.txt"})
    np.testing.assert_array_equal(ours, expected)
    assert ours.shape == (497, 741) and (ours > 0).mean() == pytest.approx(0.979, abs=1e-3)
    # 9.18..62.88 px with baseline 193.001 mm, f 999.421 and doffs 32.778: 4.6..2.0 m
    assert ours.max() == pytest.approx(193.001 * 999.421 / (9.18 + 32.778) / 1000, rel=1e-3)


@needs_other
def test_hypersim_distance_becomes_planar_depth_as_zoedepth_converts_it(tmp_path):
    path = OTHER / "hypersim" / "ai_037_002" / "images" / "scene_cam_00_geometry_hdf5" / "frame.0000.depth_meters.hdf5"
    with h5py.File(path) as f:
        distance = f["dataset"][()].astype(np.float64)
    # ZoeDepth's hypersim_distance_to_depth (zoedepth/data/hypersim.py:36-48), in float64
    w, h, focal = 1024, 768, 886.81
    x = np.linspace(-0.5 * w + 0.5, 0.5 * w - 0.5, w).reshape(1, w).repeat(h, 0)[:, :, None]
    y = np.linspace(-0.5 * h + 0.5, 0.5 * h - 0.5, h).reshape(h, 1).repeat(w, 1)[:, :, None]
    plane = np.concatenate([x, y, np.full([h, w, 1], focal)], 2)
    expected = (distance / np.linalg.norm(plane, 2, 2) * focal).astype(np.float32)
    ours = read(path, "hypersim_hdf5", focal=focal)
    np.testing.assert_allclose(ours, expected, rtol=2e-7)
    assert np.array_equal(read(path, "hypersim_hdf5"), ours)  # Hypersim's focal (886.81 px) by default
    assert (ours < distance).mean() > 0.99 and ours[h // 2, w // 2] == pytest.approx(distance[h // 2, w // 2], rel=1e-6)
    # other frames mark invalid pixels with NaN: they become "no measurement"
    holed = distance.astype(np.float16)
    holed[:10] = np.nan
    with h5py.File(tmp_path / "frame.depth_meters.hdf5", "w") as f:
        f["dataset"] = holed
    assert (read(tmp_path / "frame.depth_meters.hdf5", "hypersim_hdf5")[:10] == 0).all()


# -- files written in the published formats ----------------------------------------------------------
def test_diode_npy_with_its_mask(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.6, 300, (768, 1024, 1)).astype(np.float32)  # DIODE's (H, W, 1) float32 metres
    depth[:5] = 0  # no return
    mask = (rng.random((768, 1024)) > 0.1).astype(np.float32)  # _depth_mask.npy: 1 = valid
    np.save(tmp_path / "x_depth.npy", depth)
    np.save(tmp_path / "x_depth_mask.npy", mask)
    ours = read(tmp_path / "x_depth.npy", "npy", {"mask": tmp_path / "x_depth_mask.npy"})
    np.testing.assert_array_equal(ours, np.where(mask > 0, depth[..., 0], 0))
    np.savez(tmp_path / "y.npz", depth=depth[..., 0])
    np.testing.assert_array_equal(read(tmp_path / "y.npz", "npy", key="depth"), depth[..., 0])
    with pytest.raises(DataError, match=r"y\.npz: no array 'other'.*holds depth.*depth\.key"):
        read(tmp_path / "y.npz", "npy", key="other")
    np.save(tmp_path / "small_mask.npy", mask[:10])
    with pytest.raises(DataError, match="small_mask.npy: a"):
        read(tmp_path / "x_depth.npy", "npy", {"mask": tmp_path / "small_mask.npy"})


def test_eth3d_raw_float32_with_inf_unknown(tmp_path):
    depth = np.random.default_rng(1).uniform(0.5, 60, (40, 60)).astype("<f4")
    depth[3, :7] = np.inf
    (tmp_path / "DSC_0001.JPG").write_bytes(depth.tobytes())  # ETH3D names its depth files .JPG
    ours = read(tmp_path / "DSC_0001.JPG", "raw_float32", height=40, width=60)
    np.testing.assert_array_equal(ours, np.where(np.isinf(depth), 0, depth))
    with pytest.raises(DataError, match=r"2400 float32 values, not 4032 x 6048: set data.dataset.depth.height"):
        read(tmp_path / "DSC_0001.JPG", "raw_float32")


def test_ibims_official_mat_and_png_release(tmp_path):
    rng = np.random.default_rng(2)
    depth = rng.uniform(0.5, 20, (480, 640)).astype(np.float32)
    invalid, transparent = rng.random((480, 640)) > 0.05, rng.random((480, 640)) > 0.05
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    struct_ = {
        "rgb": rgb,
        "depth": depth,
        "mask_invalid": invalid.astype(np.uint8),
        "mask_transp": transparent.astype(np.uint8),
    }
    scipy.io.savemat(tmp_path / "corridor_01.mat", {"data": struct_})
    ours = read(tmp_path / "corridor_01.mat", "ibims_mat")
    np.testing.assert_array_equal(ours, np.where(invalid & transparent, depth, 0))
    np.testing.assert_array_equal(read_image(tmp_path / "corridor_01.mat"), rgb)
    # the PNG release: uint16 of 50 m full scale, masks as 8-bit images (ZoeDepth's ibims.py)
    stored = np.round(depth / 50 * 65535).astype(np.uint16)
    uint16_png(tmp_path / "d.png", stored)
    Image.fromarray(invalid.astype(np.uint8) * 255).save(tmp_path / "inv.png")
    Image.fromarray(transparent.astype(np.uint8)).save(tmp_path / "tr.png")
    ours = read(
        tmp_path / "d.png", "ibims_png", {"invalid_mask": tmp_path / "inv.png", "transparent_mask": tmp_path / "tr.png"}
    )
    expected = np.where(invalid & transparent, stored.astype(np.float32) * np.float32(50 / 65535), 0)
    np.testing.assert_array_equal(ours, expected)
    assert np.abs(ours - np.where(invalid & transparent, depth, 0)).max() < 50 / 65535


def test_scannet_and_vkitti2_pngs(tmp_path):
    mm = np.random.default_rng(3).integers(0, 8000, (48, 64), dtype=np.uint16)
    uint16_png(tmp_path / "scannet.png", mm)
    np.testing.assert_array_equal(read(tmp_path / "scannet.png", "png", scale=1000.0), (mm / 1000).astype(np.float32))
    cm = mm.copy()
    cm[:4] = 65535  # VKITTI2's sky: 655.35 m, beyond every cap
    uint16_png(tmp_path / "vkitti.png", cm)
    ours = read(tmp_path / "vkitti.png", "png", scale=100.0)
    np.testing.assert_array_equal(ours, (cm / 100).astype(np.float32))
    assert ours[0, 0] == pytest.approx(655.35)
    assert (read(tmp_path / "vkitti.png", "png", scale=100.0, invalid=[0, 65535])[:4] == 0).all()


def test_sintel_dpt(tmp_path):
    depth = np.random.default_rng(4).uniform(0.1, 500, (436, 1024)).astype("<f4")
    (tmp_path / "frame_0001.dpt").write_bytes(struct.pack("<fii", 202021.25, 1024, 436) + depth.tobytes())
    np.testing.assert_array_equal(read(tmp_path / "frame_0001.dpt", "sintel_dpt"), depth)
    (tmp_path / "bad.dpt").write_bytes(struct.pack("<fii", 1.0, 1024, 436) + depth.tobytes())
    with pytest.raises(DataError, match=r"bad\.dpt: not a Sintel \.dpt file"):
        read(tmp_path / "bad.dpt", "sintel_dpt")


def test_bad_encoding_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"data.dataset.depth.encoding='exr' is unknown; allowed: png, "):
        check_encoding({"encoding": "exr"})
    with pytest.raises(
        ConfigError, match=r"data.dataset.depth.sclae: not an option of encoding png \(its options: invalid, scale\)"
    ):
        check_encoding({"encoding": "png", "sclae": 1000})
    with pytest.raises(DataError, match=r"nothing\.pfm: disparity file not found"):
        read(tmp_path / "nothing.pfm", "pfm_disparity", {"calib": tmp_path / "calib.txt"})


# -- the readers on files written here, byte by byte ---------------------------------------------------
def _write_pfm(path, rows, little_endian=True, kind=b"Pf"):
    """A PFM as its specification lays it out: the header, then the rows bottom row first."""
    rows = np.asarray(rows, dtype=np.float32)
    height, width = rows.shape
    body = rows[::-1].astype("<f4" if little_endian else ">f4").tobytes()
    path.write_bytes(kind + b"\n" + f"{width} {height}\n".encode() + (b"-1.0\n" if little_endian else b"1.0\n") + body)


@pytest.mark.parametrize("little_endian", [True, False])
def test_pfm_disparity_to_depth_through_calib_txt(tmp_path, little_endian):
    disparity = np.array([[10.0, 20.0, np.inf], [40.0, -7.0, 60.0]])  # inf: unknown; -7 + doffs < 0: no depth
    _write_pfm(tmp_path / "disp0GT.pfm", disparity, little_endian)
    (tmp_path / "calib.txt").write_text(
        "cam0=[1000.5 0 300; 0 1000.5 200; 0 0 1]\ncam1=[1000.5 0 320; 0 1000.5 200; 0 0 1]\ndoffs=5.25\n"
        "baseline=190.0\nwidth=3\nheight=2\n"
    )
    ours = read(tmp_path / "disp0GT.pfm", "pfm_disparity", {"calib": tmp_path / "calib.txt"})
    expected = [
        [190.0 * 1000.5 / (d + 5.25) / 1000 if np.isfinite(d) and d + 5.25 > 0 else 0 for d in r] for r in disparity
    ]
    np.testing.assert_allclose(ours, np.array(expected, dtype=np.float32), rtol=1e-7)
    assert ours.dtype == np.float32 and ours[0, 0] == pytest.approx(190.0 * 1000.5 / 15.25 / 1000, rel=1e-7)


def test_pfm_and_calibration_errors_name_the_file(tmp_path):
    from depth_lightning.data.encodings import read_calibration, read_pfm

    with pytest.raises(DataError, match=r"missing.pfm: disparity file not found$"):
        read_pfm(tmp_path / "missing.pfm")
    _write_pfm(tmp_path / "colour.pfm", np.ones((2, 2)), kind=b"PF")
    with pytest.raises(DataError, match=r"expected a single-channel PFM \('Pf'\) of 2x2, got b'PF', 4 values"):
        read_pfm(tmp_path / "colour.pfm")
    (tmp_path / "short.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + np.zeros(5, "<f4").tobytes())
    with pytest.raises(DataError, match=r"of 3x2, got b'Pf', 5 values"):
        read_pfm(tmp_path / "short.pfm")
    (tmp_path / "text.pfm").write_bytes(b"Pf\nthree two\n-1.0\n")
    with pytest.raises(DataError, match=r"text.pfm: not a PFM file"):
        read_pfm(tmp_path / "text.pfm")
    with pytest.raises(DataError, match=r"calib.txt: calibration file not found$"):
        read_calibration(tmp_path / "calib.txt")
    (tmp_path / "calib.txt").write_text("cam0=[1000 0 1; 0 1000 1; 0 0 1]\nbaseline=190\n")
    with pytest.raises(DataError, match=r"calib.txt: expected cam0=\[f 0 cx; \.\.\.\], doffs= and baseline= lines"):
        read_calibration(tmp_path / "calib.txt")
    (tmp_path / "calib.txt").write_text("cam0=[1000 0 1; 0 1000 1; 0 0 1]\nbaseline=190\ndoffs=2.5\n")
    assert read_calibration(tmp_path / "calib.txt") == {"focal": 1000.0, "doffs": 2.5, "baseline": 190.0}


def test_hypersim_distance_to_planar_depth_pixel_by_pixel(tmp_path):
    distance = np.array([[2.0, 3.0, 4.0, np.nan], [5.0, 6.0, -1.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    with h5py.File(tmp_path / "frame.depth_meters.hdf5", "w") as f:
        f["dataset"] = distance
    focal = 2.5
    expected = np.zeros_like(distance)
    for r in range(3):
        for c in range(4):
            x, y = c - 1.5, r - 1.0  # the pixel centre's offset from the image centre
            planar = distance[r, c] * focal / np.sqrt(x * x + y * y + focal * focal)
            expected[r, c] = planar if np.isfinite(planar) and planar > 0 else 0.0
    ours = read(tmp_path / "frame.depth_meters.hdf5", "hypersim_hdf5", focal=focal)
    np.testing.assert_allclose(ours, expected.astype(np.float32), rtol=1e-7)
    with pytest.raises(DataError, match="depth file not found"):
        read(tmp_path / "none.hdf5", "hypersim_hdf5")
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f["depth"] = distance
    with pytest.raises(DataError, match=r"not a Hypersim depth_meters.hdf5 with a 'dataset'"):
        read(tmp_path / "other.hdf5", "hypersim_hdf5")


def test_sun_rgbds_rotation_is_undone_on_every_bit(tmp_path):
    millimetres = np.array([[0, 1, 7, 8], [1000, 4095, 8191, 9999]], dtype=np.uint32)
    stored = ((millimetres << 3) | (millimetres >> 13)) & 0xFFFF  # the release's storage: rotated left by 3
    uint16_png(tmp_path / "d.png", stored)
    np.testing.assert_array_equal(read(tmp_path / "d.png", "png_bitshift"), (millimetres / 1000).astype(np.float32))
    np.testing.assert_array_equal(
        read(tmp_path / "d.png", "png_bitshift", scale=100.0), (millimetres / 100).astype(np.float32)
    )


def test_a_png_marks_its_own_invalid_values(tmp_path):
    uint16_png(tmp_path / "d.png", [[0, 500, 65535], [1000, 2000, 3000]])
    np.testing.assert_array_equal(
        read(tmp_path / "d.png", "png", scale=1000.0, invalid=[0, 65535]),
        np.array([[0, 0.5, 0], [1.0, 2.0, 3.0]], dtype=np.float32),
    )
    assert read(tmp_path / "d.png", "png", scale=1000.0)[0, 2] == np.float32(65.535)


def test_header_size_reads_npy_headers_of_both_versions_and_png_headers(tmp_path):
    from depth_lightning.data.encodings import header_size

    np.save(tmp_path / "v1.npy", np.zeros((5, 7, 1), np.float32))
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, np.zeros((6, 9), np.float32), version=(2, 0))
    uint16_png(tmp_path / "d.png", np.zeros((11, 13)))
    assert header_size(tmp_path / "v1.npy") == (5, 7) and header_size(tmp_path / "v2.npy") == (6, 9)
    assert header_size(tmp_path / "d.png") == (11, 13)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"bad.png: unreadable header"):
        header_size(tmp_path / "bad.png")


def test_npy_and_npz_arrays_are_read_by_key_and_refused_by_name(tmp_path):
    depth = np.array([[1.0, -2.0], [np.inf, 4.0]], np.float64)
    np.savez(tmp_path / "d.npz", depth=depth, other=np.zeros(2))
    np.testing.assert_array_equal(read(tmp_path / "d.npz", "npy", key="depth"), [[1, 0], [0, 4]])
    with pytest.raises(
        DataError, match=r"d.npz: no array 'dep' in the file \(it holds depth, other\); set data.dataset"
    ):
        read(tmp_path / "d.npz", "npy", key="dep")
    with pytest.raises(DataError, match=r"no array None in the file"):
        read(tmp_path / "d.npz", "npy")
    with pytest.raises(DataError, match=r"gone.npy: depth file not found$"):
        read(tmp_path / "gone.npy", "npy")
    (tmp_path / "png.npy").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    with pytest.raises(DataError, match=r"png.npy: not a NumPy .npy/.npz file, which data.dataset.depth.encoding=npy"):
        read(tmp_path / "png.npy", "npy")
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00" + b"{" * 10)
    with pytest.raises(DataError, match=r"cut.npy: unreadable array"):
        read(tmp_path / "cut.npy", "npy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"cube.npy: expected an \(H, W\) depth map, got shape \(2, 3, 4\)"):
        read(tmp_path / "cube.npy", "npy")


def test_a_pairing_rule_finds_the_companion_or_says_it_does_not_match():
    from depth_lightning.data.encodings import substitute

    assert substitute("scene/rgb_00001.jpg", [r"rgb_(\d+)\.jpg$", r"depth_\1.png"], "depth") == "scene/depth_00001.png"
    with pytest.raises(DataError) as err:
        substitute("scene/x.jpg", [r"rgb_(\d+)", r"d_\1"], "mask")
    assert (
        str(err.value) == "scene/x.jpg: the pairing rule for the mask ('rgb_(\\\\d+)' -> 'd_\\\\1') does not match it"
    )


def test_a_pfm_of_another_scale_keeps_its_byte_order_and_an_image_file_is_read_as_rgb(tmp_path):
    from PIL import Image

    from depth_lightning.data.encodings import read_image, read_pfm

    rows = np.array([[1.5, 2.5], [3.5, 4.5]], np.float32)
    body = rows[::-1].astype(">f4").tobytes()
    (tmp_path / "half.pfm").write_bytes(b"Pf\n2 2\n0.5\n" + body)  # scale +0.5: big-endian, any magnitude
    np.testing.assert_array_equal(read_pfm(tmp_path / "half.pfm"), rows)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)


def test_an_ibims_rgb_of_another_dtype_and_a_damaged_npz_are_named(tmp_path):
    from depth_lightning.data.encodings import ibims_rgb

    scipy.io.savemat(tmp_path / "x.mat", {"data": {"rgb": np.zeros((4, 6, 3), np.float64), "depth": np.ones((4, 6))}})
    with pytest.raises(DataError) as err:
        ibims_rgb(tmp_path / "x.mat")
    assert str(err.value) == f"{tmp_path / 'x.mat'}: data.rgb is float64 (4, 6, 3), not an (H, W, 3) uint8 image"
    np.savez(tmp_path / "d.npz", depth=np.ones((2, 2)))
    (tmp_path / "d.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:40])  # a zip cut short: .npz, damaged
    with pytest.raises(DataError, match=r"d\.npz: unreadable array \("):
        read(tmp_path / "d.npz", "npy", {"key": "depth"})
