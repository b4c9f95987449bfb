"""The benchmark's arithmetic: how many loader cores feed the paper step here and on an H100/H200."""

import pytest

from benchmarks.report import cores_to_feed, feeding_table


def test_cores_to_feed_is_the_gpus_image_rate_over_one_cores_samples():
    # 0.5 TFLOP per training image: an H100 at 40 % of 989 TFLOP/s takes 791 images/s
    need = cores_to_feed(0.5e12, 100.0, s_per_image_here=10.0)
    assert need["H100 / H200 (989 TFLOP/s bf16) at 40% MFU"] == pytest.approx(989e12 * 0.4 / 0.5e12 / 100)
    assert need["H100 / H200 (989 TFLOP/s bf16) at 20% MFU"] == pytest.approx(3.956)
    assert need["this machine's measured paper step"] == pytest.approx(0.001)


def test_the_summary_shows_every_way_of_loading_side_by_side():
    rates = (("loose files", 30.0), ("packed chunks", 120.0), ("packed, augmentation on the device", 400.0))
    feeding = {k: cores_to_feed(0.5e12, rate, 10.0) for k, rate in rates}
    lines = feeding_table(feeding)
    assert "| consumer | loose files | packed chunks | packed, augmentation on the device |" in lines
    assert "| H100 / H200 (989 TFLOP/s bf16) at 40% MFU | 26.4 | 6.6 | 2.0 |" in lines
    assert "| this machine's measured paper step | 0.0 | 0.0 | 0.0 |" in lines
