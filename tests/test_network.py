import pytest
import torch
import torchvision

from depth_lightning.models import DepthNet, ResNetBackbone, count_parameters
from depth_lightning.models.builder import build_network
from depth_lightning.models.head import Upsample4x
from depth_lightning.models.packed_dropout import PackedUniformDropout


@pytest.mark.parametrize("size", [(240, 320), (188, 620)])
@pytest.mark.parametrize("bins", [50, 200, 1000])
def test_output_shapes(size, bins):
    net = DepthNet("resnet18", bins, upsample="bilinear").eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, *size))
    assert out.shape == (1, bins, size[0] // 2, size[1] // 2)


@pytest.mark.parametrize("size", [(243, 327), (33, 47), (64, 64)])
def test_odd_sizes_forward_and_backward(size):
    net = DepthNet("resnet18", 20)
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 20, size[0] // 2, size[1] // 2)
    out.mean().backward()
    assert all(p.grad is not None for p in net.head.parameters())


def test_paper_backbone_shape_resnet152():
    net = DepthNet("resnet152", 200).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 240, 320)).shape == (1, 200, 120, 160)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_features_stay_at_one_eighth(name):
    bb = ResNetBackbone(name, taps=["layer2", "layer3.mid", "layer3", "layer4"]).eval()
    with torch.no_grad():
        maps = bb(torch.randn(1, 3, 240, 320))
    assert [m.shape[-2:] for m in maps] == [(30, 40)] * 4
    assert [m.shape[1] for m in maps] == bb.out_channels


def test_dilated_bottleneck_equals_torchvision_replace_stride_with_dilation():
    ours = ResNetBackbone("resnet50", dilated=True, taps=["layer4"]).eval()
    tv = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]).eval()
    ours.load_torchvision_state_dict(tv.state_dict())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        torch.testing.assert_close(ours(x)[0], ref)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_weights_load_key_for_key_and_compute_as_torchvision_up_to_the_first_changed_stage(name):
    # the trunk's parameter names and order are torchvision's: its stem and stages 1-2 (which neither
    # dilation nor the "no dilation" ablation change) reproduce torchvision's maps exactly
    tv = getattr(torchvision.models, name)(weights=None).eval()
    ours = ResNetBackbone(name, dilated=False, taps=["layer2"]).eval()
    ours.load_torchvision_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        feats = tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))
        torch.testing.assert_close(ours(x)[0], feats)
    assert list(ours.state_dict()) == [k for k in tv.state_dict() if not k.startswith("fc.")]


def _trunk(pretrained: str) -> ResNetBackbone:
    """The trunk as training's builder initialises it (``model.net.pretrained``)."""
    return build_network({"backbone": "resnet18", "num_bins": 10, "pretrained": pretrained}, (64, 64)).backbone


def test_state_dict_path_is_loaded_strictly(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    bb = _trunk(str(path))
    for k, v in bb.state_dict().items():
        torch.testing.assert_close(v, tv.state_dict()[k])
    torch.save({k: v for k, v in tv.state_dict().items() if k != "layer1.0.conv1.weight"}, path)
    with pytest.raises(ValueError, match="missing keys"):
        _trunk(str(path))
    with pytest.raises(FileNotFoundError, match="model.net.pretrained"):
        _trunk(str(tmp_path / "absent.pth"))


def test_imagenet_weights_come_from_torchvisions_cache_and_never_from_a_constructor(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    # no network here: an empty cache is a clear error naming where the file is expected
    with pytest.raises(RuntimeError, match=str(cached.parent)):
        _trunk("imagenet")
    for constructor in (ResNetBackbone, DepthNet):  # the deployable parts take no such argument
        with pytest.raises(TypeError, match="pretrained"):
            constructor("resnet18", pretrained="imagenet")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), cached)
    bb = _trunk("imagenet")
    torch.testing.assert_close(bb.conv1.weight, tv.conv1.weight)


def _counts(**kw):
    net = DepthNet("resnet18", 100, **kw)
    return count_parameters(net.backbone), count_parameters(net.head)


def test_ablation_switches_change_only_what_they_should(capsys):
    full = _counts()
    no_dil = _counts(dilated=False)
    no_cat = _counts(fusion=False)
    bil = _counts(upsample="bilinear")
    with capsys.disabled():
        print(f"\nparams (backbone, head) full={full} no_dilation={no_dil} no_concat={no_cat} bilinear={bil}")
    assert no_dil == full  # dilation changes the receptive field, not the weights
    assert no_cat[0] == full[0] and no_cat[1] < full[1]
    assert bil[0] == full[0] and full[1] - bil[1] == 100 * 100 * 64
    dil, plain = DepthNet("resnet18", 10), DepthNet("resnet18", 10, dilated=False)
    assert dil.backbone.layer4[1].conv1.dilation == (4, 4)
    assert plain.backbone.layer4[1].conv1.dilation == (1, 1)
    assert plain.backbone.layer4[0].conv1.stride == (1, 1)
    assert DepthNet("resnet18", 10, fusion=False).head.classifier[0].in_channels == 512


def test_bilinear_and_learned_upsampling_agree_at_init():
    x = torch.randn(1, 6, 5, 7)
    a, b = Upsample4x(6, "learned"), Upsample4x(6, "bilinear")
    torch.testing.assert_close(a(x, (20, 28)), b(x, (20, 28)))
    const = a(torch.ones(1, 6, 5, 7), (20, 28))
    assert torch.allclose(const[..., 2:-2, 2:-2], torch.ones(()))  # interior of a constant stays constant


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "resnet9"}, "resnet18"),
        ({"taps": ["layer1"]}, "layer2"),
        ({"taps": ["layer3.7"]}, "out of range"),
        ({"upsample": "nearest"}, "learned"),
        ({"num_bins": 1}, "num_bins"),
    ],
)
def test_bad_configuration_names_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthNet(**({"backbone": "resnet18", "num_bins": 10} | kwargs))


def test_bad_inputs():
    net = DepthNet("resnet18", 10).eval()
    with pytest.raises(ValueError, match="3, H, W"):
        net(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="too small"):
        net(torch.randn(1, 3, 16, 64))


def _flops_by_hand(net: torch.nn.Module, height: int, width: int) -> int:
    """Forward FLOPs written out per layer (2 x multiply-adds): every convolution from its output's
    size, the 8x8 stride-4 deconvolution from its input's (Upsample4x: K x K learned, or one kernel per
    channel)."""
    total = []

    def conv(m, inputs, out):
        total.append(2 * out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])

    def deconv(m, inputs, out):
        per_input = m.channels if m.mode == "learned" else 1
        total.append(2 * inputs[0][0].numel() * per_input * 8 * 8)

    hooks = [m.register_forward_hook(conv) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_hook(deconv) for m in net.modules() if isinstance(m, Upsample4x)]
    with torch.no_grad():
        net(torch.zeros(1, 3, height, width))
    for h in hooks:
        h.remove()
    return sum(total)


@pytest.mark.parametrize("upsample", ["bilinear", "learned"])
def test_summary_counts_parameters_and_flops(capsys, upsample):
    from depth_lightning.models.summary import main, summarise

    info = summarise("resnet18", 20, "64x96", upsample)
    net = DepthNet("resnet18", 20, upsample=upsample).eval()
    assert info["params"] == count_parameters(net)
    assert info["params"] == info["params_backbone"] + info["params_head"]
    assert info["gflops_forward"] * 1e9 == pytest.approx(_flops_by_hand(net, 64, 96), rel=1e-12)
    main(["backbone=resnet18", "bins=20", "size=64x96", "fusion=false"])
    assert "parameters:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown argument"):
        main(["depth=3"])


@pytest.mark.parametrize("p", [0.5, 0.2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_dropout_keeps_each_value_with_probability_one_minus_p(p, channels_last):
    torch.manual_seed(0)
    x = (torch.rand(2, 64, 40, 50) + 0.5).requires_grad_()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x_in = x.contiguous(memory_format=layout)
    drop = PackedUniformDropout(p).train()
    y = drop(x_in)
    assert y.is_contiguous(memory_format=layout)
    kept = y != 0
    n = kept.numel()
    # the kept fraction within 5 standard deviations of a Bernoulli(1 - p) count
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * ((p * (1 - p) / n) ** 0.5)
    torch.testing.assert_close(y[kept], x_in[kept] / (1 - p))
    # neighbouring values (along channels and along width) are not tied to each other
    same = (kept[:, 1:] == kept[:, :-1]).float().mean().item()
    assert abs(same - (p**2 + (1 - p) ** 2)) < 0.01
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    torch.manual_seed(3)
    a = drop(x_in.detach())
    torch.manual_seed(3)
    assert torch.equal(a, drop(x_in.detach()))


def test_cpu_dropout_off_in_eval_and_at_zero_and_on_strided_input():
    x = torch.rand(1, 8, 6, 10)
    assert torch.equal(PackedUniformDropout(0.5).eval()(x), x)
    assert torch.equal(PackedUniformDropout(0.0).train()(x), x)
    y = PackedUniformDropout(0.5).train()(x[..., ::2])  # not dense: taken contiguous first
    assert y.shape == (1, 8, 6, 5)
    assert set(torch.unique(y / x[..., ::2] * 0.5).tolist()) <= {0.0, 1.0}


def test_imagenet_normalisation_equals_torchvisions_preprocessing_of_the_weights(tmp_path):
    weights = torchvision.models.ResNet152_Weights.DEFAULT
    preprocess = weights.transforms()  # no download: only the weights' metadata
    x = torch.rand(2, 3, 48, 64)
    expected = torchvision.transforms.functional.normalize(x, preprocess.mean, preprocess.std)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    pretrained = build_network({"backbone": "resnet18", "num_bins": 20, "pretrained": str(path)}, (48, 64))
    torch.testing.assert_close(pretrained.normalize(x), expected)
    # the network feeds the backbone the normalised image: what a bare trunk gives on `expected`
    pretrained.eval()
    torch.testing.assert_close(pretrained.backbone(pretrained.normalize(x))[-1], pretrained.backbone(expected)[-1])
    from_scratch = build_network({"backbone": "resnet18", "num_bins": 20, "normalize": "auto"}, (48, 64))
    torch.testing.assert_close(from_scratch.normalize(x), x)  # nothing pretrained: the identity
    # the statistics travel with the weights: a checkpoint rebuilt without the pretrained file restores them
    from_scratch.load_state_dict(pretrained.state_dict())
    torch.testing.assert_close(from_scratch.normalize(x), expected)
    with pytest.raises(ValueError, match="model.net.normalize"):
        DepthNet("resnet18", 20, normalize="zscore")


def test_frozen_backbone_batchnorm_keeps_its_statistics_through_a_real_fit_while_the_head_trains():
    import lightning as L

    from depth_lightning.run.setup import build_module
    from tests.helpers import composed

    torch.manual_seed(0)
    module = build_module(composed("debug=tiny", "model.net.freeze_bn=true", "model.net.dropout=0"))
    reference = DepthNet("resnet18", 80, upsample="bilinear", dropout=0).eval()
    reference.load_state_dict(module.net.state_dict())  # the same names: checkpoints load either way
    x = torch.rand(2, 3, 64, 96)
    module.net.train()  # frozen statistics: in training mode it normalises exactly as eval mode does
    torch.testing.assert_close(module.net.backbone(x)[-1], reference.backbone(x)[-1])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    batches = [{"image": torch.rand(2, 3, 64, 96, generator=g), "depth": torch.rand(2, 64, 96, generator=g) * 5 + 1}]
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches * 3, batch_size=None))
    after = module.state_dict()
    stats = [k for k in after if k.startswith("net.backbone.") and k.endswith("running_mean")]
    assert stats and all(torch.equal(after[k], before[k]) for k in stats)
    assert not torch.equal(after["net.backbone.bn1.weight"], before["net.backbone.bn1.weight"])  # affine: trained
    assert not torch.equal(after["net.head.classifier.1.running_mean"], before["net.head.classifier.1.running_mean"])
    unfrozen = build_module(composed("debug=tiny"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfrozen.net.backbone.modules())


@pytest.mark.parametrize(
    ("row", "args"),
    [
        ("ResNet-152, K = 200, 240x320 (NYU), learned deconvolution", ("resnet152", 200, "240x320", "learned")),
        ("ResNet-18, K = 80, 120x160 (the CPU default)", ("resnet18", 80, "120x160", "bilinear")),
    ],
)
def test_the_documented_sizes_and_flops_are_what_the_summary_measures(row, args):
    from depth_lightning.models.summary import summarise
    from tests.helpers import ROOT

    line = next(ln for ln in (ROOT / "docs" / "paper.md").read_text().splitlines() if ln.startswith(f"| {row} |"))
    params, gflops = (cell.strip() for cell in line.strip("|").split("|")[1:3])
    info = summarise(*args)
    assert f"{info['gflops_forward']:.1f}" == gflops, line
    assert params.startswith(f"{info['params'] / 1e6:.1f} M"), line
