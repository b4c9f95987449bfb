"""ONNX export with the decoding inside; bf16 autocast and channels_last correctness (not timing)."""

import numpy as np
import pytest
import torch

from depth_lightning.inference import DepthEstimator
from depth_lightning.inference.onnx import ExportedDepth
from depth_lightning.models import bin_cross_entropy
from depth_lightning.run.setup import build_module
from tests.helpers import composed


def test_onnx_export_matches_pytorch_on_two_sizes(tiny_checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')")
    from depth_lightning.inference.loading import load_model
    from depth_lightning.inference.onnx import export_onnx

    ckpt = tiny_checkpoint
    out = tmp_path / "model.onnx"
    export_onnx(load_model(ckpt), out, uncertainty=True)  # what python -m depth_lightning.export runs
    session = ort.InferenceSession(str(out))
    reference = ExportedDepth(load_model(ckpt), uncertainty=True).eval()
    for batch, h, w in ((2, 64, 96), (1, 90, 150)):
        x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(h))
        depth, unc = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            ref_depth, ref_unc = reference(x)
        assert depth.shape == (batch, h // 2, w // 2)
        np.testing.assert_allclose(depth, ref_depth.numpy(), rtol=1e-4)
        np.testing.assert_allclose(unc, ref_unc.numpy(), rtol=1e-4, atol=1e-5)
        api = DepthEstimator.from_checkpoint(ckpt, device="cpu").predict(x, resize=False, upsample=False)
        np.testing.assert_allclose(depth, api["depth"].numpy(), rtol=1e-4)  # the Python API agrees
        np.testing.assert_allclose(unc, api["uncertainty"].numpy(), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return build_module(composed("debug=tiny", "model.channels_last=false")).eval()


def reference_logits(module, x):
    with torch.no_grad():
        return module(x)


def test_bf16_autocast_keeps_softmax_decoding_and_loss_in_float32(module):
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    depth = torch.rand(2, 64, 96) * 5 + 1
    with torch.no_grad():
        reference = module.bins.decode(module(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = module(x)
            decoded = module.bins.decode(logits)
            loss = bin_cross_entropy(logits, module.bins.labels(depth[:, ::2, ::2]))
    assert logits.dtype == torch.bfloat16
    assert decoded["soft"].dtype == decoded["uncertainty"].dtype == loss.dtype == torch.float32
    rel = (decoded["soft"] - reference["soft"]).abs() / reference["soft"]
    # bf16 keeps 8 bits of mantissa (0.4 %) in the logits: most pixels within 1 %, every one within 10 %
    assert rel.median() < 0.01 and torch.quantile(rel, 0.99) < 0.05 and rel.max() < 0.1
    exact = bin_cross_entropy(reference_logits(module, x), module.bins.labels(depth[:, ::2, ::2]))
    assert loss.item() == pytest.approx(exact.item(), rel=0.02)


def test_channels_last_gives_the_same_depth(module):
    cl = build_module(composed("debug=tiny", "model.channels_last=true")).eval()
    cl.load_state_dict(module.state_dict())
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(cl.bins.soft(cl(x)), module.bins.soft(module(x)), rtol=1e-4, atol=1e-4)
    assert cl.net.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_pretrained_models_normalisation_reaches_predict_and_the_onnx_graph(tmp_path):
    """A model trained from ImageNet weights (normalize=auto: ImageNet statistics; freeze_bn=auto: frozen)
    is saved, reloaded without its pretrained file (as predict and export do) and keeps feeding its
    weights normalised images: the outputs are the original model's, computed here on normalised input."""
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')")
    import torchvision

    from depth_lightning.inference.loading import load_model
    from depth_lightning.inference.onnx import export_onnx

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    cfg = composed("debug=tiny", "model.channels_last=false", f"model.net.pretrained={weights}")
    torch.manual_seed(0)
    trained = build_module(cfg)
    assert all(not m.training for m in trained.net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    trained.eval()
    ckpt = tmp_path / "pretrained.ckpt"
    torch.save({"hyper_parameters": dict(trained.hparams), "state_dict": trained.state_dict()}, ckpt)
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    with torch.no_grad():  # the backbone and head fed the ImageNet-normalised image by hand
        logits = trained.net.head(trained.net.backbone((x - mean) / std), (32, 48))
        expected = trained.bins.decode(logits)["soft"]
    weights.unlink()  # nothing of the pretrained file is read at load time
    reloaded = load_model(ckpt)
    assert reloaded.settings["normalize"] == "imagenet"  # normalize=auto, resolved from the weights it holds
    api = DepthEstimator(reloaded, device="cpu").predict(x, resize=False, upsample=False)
    torch.testing.assert_close(api["depth"], expected, rtol=1e-4, atol=1e-5)
    export_onnx(reloaded, tmp_path / "m.onnx")
    (depth,) = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"image": x.numpy()})
    np.testing.assert_allclose(depth, expected.numpy(), rtol=1e-4)
