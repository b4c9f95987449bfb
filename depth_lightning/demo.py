"""``python -m depth_lightning.demo ckpt_path=<checkpoint | model folder | owner/name>`` (``depth-demo``): a Gradio
page on localhost to look at a model's predictions: the depth map with a colour bar in metres, the
uncertainty, the coloured point cloud in 3D, the depth range, and downloads of the 16-bit PNG
(millimetres), the ``.npy`` and the ``.ply``; controls for the decoder, flip test-time augmentation and the
camera's field of view.

It runs the code ``predict`` runs (:class:`~depth_lightning.inference.DepthEstimator`, ``read_rgb``,
``write_prediction``, ``write_ply``), so its PNG equals ``predict``'s byte for byte. A bad input (a depth map,
a file that is not an image, an oversized image) is a message in the page; the server goes on. Gradio is
an optional extra (``pip install depth_lightning[demo]``); nothing else in the suite imports this module.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from depth_lightning.core.errors import USER_ERRORS, ConfigError
from depth_lightning.data.io import read_rgb
from depth_lightning.inference import DepthEstimator
from depth_lightning.inference.outputs import write_prediction
from depth_lightning.inference.pointcloud import intrinsics_for, write_glb, write_ply
from depth_lightning.run.command import command

MAX_SIDE = 4096  # pixels: a larger upload is refused in the page (memory), not resized silently


def depth_figure(depth: np.ndarray, d_min: float, d_max: float) -> np.ndarray:
    """The depth map coloured on the bins' log range, with a colour bar in metres, as an RGB array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    h, w = depth.shape
    fig, ax = plt.subplots(figsize=(6, 6 * h / w + 0.3), dpi=100)
    shown = ax.imshow(np.clip(depth, d_min, d_max), cmap="magma_r", norm=LogNorm(d_min, d_max))
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="depth (m)")
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


class DemoModel:
    """What the page calls: one request's prediction, written as ``predict`` writes it into a folder of its
    own under ``workdir``; refusals as :class:`ConfigError` / ``DataError`` with a message for the page."""

    def __init__(self, estimator: DepthEstimator, workdir: str | Path) -> None:
        self.estimator, self.workdir = estimator, Path(workdir)

    def run(self, path: str | None, decoder: str, flip: bool, fov_deg: float) -> dict[str, Any]:
        if not path:
            raise ConfigError("give an image: upload one, paste one, or pick an example")
        rgb = read_rgb(path)  # a depth map or a file that is not an image is refused here, by name
        if max(rgb.shape[:2]) > MAX_SIDE:
            raise ConfigError(f"{Path(path).name}: {rgb.shape[1]}x{rgb.shape[0]} pixels; at most {MAX_SIDE} a side")
        pred = self.estimator.predict(rgb, decoder=decoder, flip=bool(flip), resize=True)
        out = self.workdir / uuid.uuid4().hex  # one folder a request: concurrent users never share files
        out.mkdir(parents=True)
        name, bins = Path(path).name, self.estimator.bins
        write_prediction(out, name, pred, bins.d_min, bins.d_max)  # predict's own files, byte for byte
        np.save(out / f"{name}_depth.npy", pred["depth"].astype(np.float32))
        camera = intrinsics_for(rgb.shape[:2], None, fov_deg)
        points = write_ply(out / f"{name}_points.ply", pred["depth"], rgb, camera)  # as predict pointcloud=true
        write_glb(out / f"{name}_points.glb", pred["depth"], rgb, camera)  # the same points, for the 3D view
        depth = pred["depth"]
        return {
            "figure": depth_figure(depth, bins.d_min, bins.d_max),
            "uncertainty": str(out / f"{name}_uncertainty.png"),
            "cloud": str(out / f"{name}_points.glb"),
            "files": [str(out / f"{name}_depth.png"), str(out / f"{name}_depth.npy"), str(out / f"{name}_points.ply")],
            "info": (
                f"**{name}**: {rgb.shape[1]}x{rgb.shape[0]}, `{decoder}` decoder{', flip TTA' if flip else ''}; "
                f"depth {float(depth.min()):.2f}-{float(depth.max()):.2f} m (median {float(np.median(depth)):.2f} m); "
                f"{points} points"
            ),
        }


def build_page(estimator: DepthEstimator, workdir: str | Path | None = None, examples: list[str] | None = None) -> Any:
    """The Gradio page of ``estimator`` (a ``gr.Blocks``, not started)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    model = DemoModel(estimator, workdir or tempfile.mkdtemp(prefix="depth-demo-"))
    settings = estimator.model.settings

    def predict(path: str | None, decoder: str, flip: bool, fov: float) -> tuple[Any, ...]:
        try:
            found = model.run(path, decoder, flip, fov)
        except USER_ERRORS as err:  # shown in the page; the server goes on
            raise gr.Error(str(err)) from None
        return found["figure"], found["uncertainty"], found["cloud"], found["info"], found["files"]

    with gr.Blocks(title="depth_lightning") as page:
        gr.Markdown(
            f"# depth_lightning\n{settings['backbone']}, {settings['num_bins']} log-depth bins over "
            f"[{settings['d_min']}, {settings['d_max']}] m, trained at {settings['input_size'][0]}x"
            f"{settings['input_size'][1]}: depth as classification, soft-weighted-sum inference (Li, Dai, He)."
        )
        with gr.Row():
            with gr.Column():
                # image_mode=None: the uploaded file as it is (read as predict reads it; a depth map refused)
                image = gr.Image(
                    type="filepath", image_mode=None, label="image", sources=["upload", "clipboard"], elem_id="image"
                )
                decoder = gr.Radio(["soft", "hard"], value=settings["decoder"], label="decoder", elem_id="decoder")
                flip = gr.Checkbox(False, label="flip test-time augmentation", elem_id="flip")
                fov = gr.Slider(20, 120, value=60, step=1, label="horizontal field of view (degrees)", elem_id="fov")
                button = gr.Button("Estimate depth", variant="primary", elem_id="run")
                if examples:
                    gr.Examples(examples, inputs=image)
            with gr.Column():
                figure = gr.Image(label="depth (m)", type="numpy", elem_id="depth")
                info = gr.Markdown(elem_id="info")
                uncertainty = gr.Image(label="uncertainty (std of log depth)", type="filepath", elem_id="uncertainty")
                cloud = gr.Model3D(label="point cloud", elem_id="cloud")
                files = gr.File(
                    label="downloads: depth PNG (mm), depth .npy (m), point cloud .ply",
                    file_count="multiple",
                    elem_id="files",
                )
        button.click(predict, [image, decoder, flip, fov], [figure, uncertainty, cloud, info, files])
    return page


def launch(model: str | Path, host: str = "127.0.0.1", port: int | None = None, device: str = "auto", **kw: Any) -> Any:
    """Load ``model`` and serve its page (blocks, unless ``prevent_thread_lock=True`` is given)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a research tool works offline: no telemetry
    estimator = DepthEstimator.from_pretrained(model, device=device)
    page = build_page(estimator, examples=kw.pop("examples", None))
    return page.launch(server_name=host, server_port=port, **kw)


def run_demo(cfg: DictConfig) -> None:
    """The page of ``cfg.ckpt_path``, served until stopped."""
    launch(cfg.ckpt_path, cfg.host, cfg.port, cfg.device)


main = command("demo", run_demo)

if __name__ == "__main__":
    main()
