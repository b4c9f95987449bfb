"""The demo page in a real headless browser (Playwright's Python API driving Debian's Chromium): a real NYU
frame uploaded, the depth PNG downloaded equal to predict's byte for byte, the 3D view given one point per
pixel, the decoder switched, a depth map refused in the page and the page working on afterwards; and the
Space folder of ``export format=space`` started as ``python app.py``."""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from depth_lightning.core.config import compose_config
from tests.helpers import SHARED

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NYU = SHARED / "realdata" / "nyu" / "sync" / "metric3d_nyu_demo"
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium; .ci/run installs it)"),
    pytest.mark.skipif(not NYU.is_dir(), reason=f"the real NYU samples are not at {NYU}"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(tiny_checkpoint, tmp_path_factory):
    from depth_lightning.demo import build_page
    from depth_lightning.inference import DepthEstimator

    page = build_page(DepthEstimator.from_pretrained(tiny_checkpoint, device="cpu"), tmp_path_factory.mktemp("w"))
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    page.close()


def upload(tab, image: Path) -> None:
    clear = tab.locator("#image button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    tab.locator("#image input[type=file]").set_input_files(str(image))


def run_once(tab, image: Path | None, expected: str) -> None:
    """Upload ``image`` (None: keep the one there), press the button, wait for ``expected`` in the result."""
    if image is not None:
        upload(tab, image)
    tab.locator("#run").click()
    tab.wait_for_function(f"document.querySelector('#info').innerText.includes({expected!r})", timeout=60_000)


def test_the_page_predicts_as_predict_does_and_survives_a_bad_input(served, browser, tiny_checkpoint, tmp_path):
    from plyfile import PlyData

    from depth_lightning.predict import predict

    image = tmp_path / "room.jpg"
    shutil.copy(NYU / "rgb" / "rgb_00000.jpg", image)
    predict(compose_config(f"ckpt_path={tiny_checkpoint}", f"input={image}", f"output={tmp_path / 'cli'}",
                           "device=cpu", config_name="predict"))  # fmt: skip
    tab = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 1800})  # the 3D view in sight
    tab.goto(served)
    with tab.expect_response(lambda r: r.url.endswith(".glb"), timeout=90_000) as cloud:
        run_once(tab, image, "soft decoder")
    glb = cloud.value.body()  # what the 3D view was given: the points as a glTF binary
    gltf = json.loads(glb[20 : 20 + struct.unpack("<I", glb[12:16])[0]])
    assert gltf["meshes"][0]["primitives"][0]["mode"] == 0  # points
    assert gltf["accessors"][0]["count"] == 480 * 640  # one point per pixel: predicted depth is valid everywhere
    with tab.expect_download() as got:
        tab.locator("#files a[download='room.jpg_depth.png']").click()
    assert Path(got.value.path()).read_bytes() == (tmp_path / "cli" / "room.jpg_depth.png").read_bytes()
    with tab.expect_download() as got:
        tab.locator("#files a[download='room.jpg_points.ply']").click()
    assert PlyData.read(got.value.path())["vertex"].count == 480 * 640  # the .ply: the same points
    soft = tab.locator("#info").inner_text()
    tab.get_by_label("hard").check()
    run_once(tab, None, "hard decoder")
    assert tab.locator("#info").inner_text() != soft  # another decoder, other depths
    upload(tab, NYU / "depth" / "sync_depth_00000.png")  # a 16-bit depth map given as the photograph
    tab.locator("#run").click()
    tab.get_by_text("not an RGB photograph").first.wait_for(timeout=30_000)
    again = tmp_path / "again.jpg"
    shutil.copy(NYU / "rgb" / "rgb_00050.jpg", again)
    run_once(tab, again, "again.jpg")  # the server went on
    tab.close()


def test_the_space_folder_starts_as_python_app_py(tiny_checkpoint, tmp_path, browser):
    from depth_lightning.export import export

    space = tmp_path / "space"
    export(compose_config(f"ckpt_path={tiny_checkpoint}", "format=space", f"output={space}", config_name="export"))
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "model", "requirements.txt"]
    front = (space / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    app = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert app.poll() is None, app.stdout.read().decode()[-2000:]
                time.sleep(0.5)
        tab = browser.new_page()
        tab.goto(url)
        tab.get_by_text("Estimate depth").wait_for(timeout=30_000)
        assert "resnet18, 80 log-depth bins" in tab.content()
        tab.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
