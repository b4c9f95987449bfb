import math

import pytest
import torch

from depth_lightning.models import IGNORE_INDEX, LogDepthBins, bin_cross_entropy


@pytest.fixture
def bins() -> LogDepthBins:
    return LogDepthBins(0.5, 10.0, 200)


def test_bin_geometry(bins):
    assert bins.q == pytest.approx((math.log(10) - math.log(0.5)) / 199)
    assert bins.log_centres[0].item() == pytest.approx(math.log(0.5), abs=1e-6)
    assert bins.log_centres[-1].item() == pytest.approx(math.log(10.0), abs=1e-6)


def test_labels_round_trip_within_half_a_bin(bins):
    depth = torch.exp(torch.empty(4, 30, 40).uniform_(math.log(0.5), math.log(10.0)))
    labels = bins.labels(depth)
    onehot = torch.nn.functional.one_hot(labels, bins.num_bins).permute(0, 3, 1, 2).float() * 50
    err = (torch.log(bins.hard(onehot)) - torch.log(depth)).abs()
    assert err.max().item() <= bins.q / 2 + 1e-5


def test_labels_of_invalid_pixels_are_ignored(bins):
    depth = torch.tensor([[[0.0, -1.0, math.nan, math.inf, 0.05, 13.0, 0.5, 10.0]]])
    labels = bins.labels(depth)[0, 0].tolist()
    assert labels[:4] == [IGNORE_INDEX] * 4
    assert labels[4:] == [0, bins.num_bins - 1, 0, bins.num_bins - 1]  # outside the bins: clamped to the ends


def test_soft_of_two_bin_mixture_is_geometric_mean(bins):
    logits = torch.full((1, bins.num_bins, 1, 1), -1e4)
    logits[0, 10] = logits[0, 30] = 0.0
    d10, d30 = torch.exp(bins.log_centres[[10, 30]])
    assert bins.soft(logits).item() == pytest.approx(math.sqrt(d10 * d30), rel=1e-5)
    # std of log depth of a 50/50 mixture is half the distance of the centres
    assert bins.uncertainty(logits).item() == pytest.approx(10 * bins.q, rel=1e-4)


def test_decoders_stay_float32_under_bf16_autocast(bins):
    logits = torch.randn(2, bins.num_bins, 5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bins.decode(logits.bfloat16())
        soft = bins.soft(logits.bfloat16())
    assert out["soft"].dtype == torch.float32 and soft.dtype == torch.float32
    torch.testing.assert_close(soft, bins.soft(logits.bfloat16().float()))


def test_pixel_accuracy_of_the_bin_labels_counts_valid_pixels_only(bins):
    """Table 4's pixel accuracy as the evaluator scores what the module hands it: the argmax bins and
    the ground truth's labels at the output resolution; per image, the hits and the labelled pixels."""
    from depth_lightning.evaluation.evaluator import Evaluator
    from depth_lightning.evaluation.protocol import EvalProtocol

    depth = torch.exp(torch.empty(1, 4, 4).uniform_(math.log(0.5), math.log(10.0)))
    depth[0, 0, 0] = 0  # invalid, never counted
    labels = bins.labels(depth)
    logits = torch.nn.functional.one_hot(labels.clamp_min(0), bins.num_bins).permute(0, 3, 1, 2).float()
    evaluator = Evaluator(EvalProtocol(caps=(10.0,)), num_bins=bins.num_bins)
    for expected in (1.0, 14 / 15):
        evaluator.reset()
        evaluator.process({"depth": depth}, {**bins.decode(logits), "labels": labels})
        result = evaluator.evaluate()
        assert result.values["pixel_acc"] == pytest.approx(expected)
        hits, pixels = result.record.bin_hits[1][0]
        assert (hits, pixels) == (round(expected * 15), 15)
        logits[0, :, 1, 1] = logits[0, :, 1, 1].roll(1)  # one pixel's bin off by one


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"num_bins": 1}, "num_bins"), ({"d_min": 5.0, "d_max": 2.0}, "d_min"), ({"d_min": 0.0}, "d_min")],
)
def test_bad_settings(kwargs, name):
    args = {"d_min": 0.5, "d_max": 10.0, "num_bins": 10} | kwargs
    with pytest.raises(ValueError, match=name):
        LogDepthBins(**args)


def test_loss_with_no_valid_pixel_is_zero_with_gradient():
    logits = torch.randn(2, 7, 3, 4, requires_grad=True)
    labels = torch.full((2, 3, 4), IGNORE_INDEX)
    loss = bin_cross_entropy(logits, labels)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_loss_averages_over_valid_pixels_only():
    logits = torch.randn(1, 5, 2, 2)
    labels = torch.tensor([[[1, IGNORE_INDEX], [4, IGNORE_INDEX]]])
    logp = torch.log_softmax(logits, 1)
    expected = -(logp[0, 1, 0, 0] + logp[0, 4, 1, 0]) / 2
    assert bin_cross_entropy(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert bin_cross_entropy(logits.bfloat16(), labels).dtype == torch.float32


def test_most_likely_is_argmax_with_its_first_maximum_rule():
    logits = torch.randn(2, 30, 7, 9)
    logits[0, 5] = logits[0, 17] = logits[0].max(0).values + 1  # a tie: the first index wins
    for layout in (torch.contiguous_format, torch.channels_last):
        x = logits.contiguous(memory_format=layout)
        assert torch.equal(LogDepthBins.most_likely(x), x.argmax(dim=1))
        assert torch.equal(LogDepthBins.most_likely(x.bfloat16()), x.bfloat16().argmax(dim=1))
    assert (LogDepthBins.most_likely(logits)[0] == 5).all()


def test_decode_gives_both_decoders_the_uncertainty_and_the_bin_in_float32_under_autocast(bins):
    logits = torch.randn(2, bins.num_bins, 5, 6, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bins.decode(logits)
        probs = bins.probabilities(logits)
    assert set(out) == {"soft", "hard", "uncertainty", "bin"}
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 5, 6))
    reference = torch.softmax(logits.double(), 1)
    torch.testing.assert_close(probs.double(), reference, rtol=1e-5, atol=1e-7)  # not a bf16 softmax
    torch.testing.assert_close(out["hard"], torch.exp(bins.log_centres[logits.argmax(1)]))
    mean = (reference * bins.log_centres.double()[:, None, None]).sum(1)
    std = ((reference * bins.log_centres.double()[:, None, None] ** 2).sum(1) - mean**2).clamp_min(0).sqrt()
    torch.testing.assert_close(out["uncertainty"].double(), std, rtol=1e-3, atol=1e-5)


def test_the_centres_travel_with_the_weights_and_edge_settings_are_allowed():
    bins = LogDepthBins(1.0, 8.0, 2)  # two bins: the smallest K
    torch.testing.assert_close(bins.state_dict()["log_centres"], torch.tensor([0.0, math.log(8.0)]))
    assert bins.log_centres.tolist() == pytest.approx([0.0, math.log(8.0)])
    for kwargs in ({"num_bins": 2.0}, {"num_bins": True}, {"d_min": 3.0, "d_max": 3.0}, {"d_min": float("nan")}):
        with pytest.raises(ValueError, match="num_bins must be an integer|bins need 0 < d_min < d_max"):
            LogDepthBins(**({"d_min": 1.0, "d_max": 8.0, "num_bins": 4} | kwargs))


def test_several_views_are_decoded_as_their_mean_distribution_and_one_view_as_itself(bins):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, bins.num_bins, 4, 5, generator=g), torch.randn(2, bins.num_bins, 4, 5, generator=g)
    probs = (torch.softmax(a, 1) + torch.softmax(b, 1)) / 2  # Eq. 5 is linear in p: the views' mean
    both = bins.decode([a, b], distribution=True)
    assert set(both) == {"soft", "hard", "uncertainty", "bin", "probabilities"}
    torch.testing.assert_close(both["probabilities"], probs)
    torch.testing.assert_close(both["soft"], torch.exp((probs * bins.log_centres[:, None, None]).sum(1)))
    hard = (bins.log_centres[a.argmax(1)] + bins.log_centres[b.argmax(1)]) / 2  # the argmax centres' mean
    torch.testing.assert_close(both["hard"], torch.exp(hard))
    assert torch.equal(both["bin"], probs.argmax(1))  # the most likely bin of the mean distribution
    assert not torch.equal(both["bin"], a.argmax(1))
    for one in (bins.decode(a, distribution=True), bins.decode([a], distribution=True)):
        torch.testing.assert_close(one["probabilities"], torch.softmax(a, 1))
        assert torch.equal(one["bin"], a.argmax(1))
    in_log = bins.decode((a, b), log=True)
    torch.testing.assert_close(in_log["soft"], both["soft"].log())
    torch.testing.assert_close(in_log["hard"], hard)
    assert "probabilities" not in in_log
