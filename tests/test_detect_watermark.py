"""Green-list watermarks: the z-score and p-value in closed form, and a CPU round trip with a
tiny GPT-2 (generate with the watermark, detect it; human and unwatermarked text pass)."""

import math

import numpy as np
import pytest
from conftest import tiny_samples

from guard.config import WatermarkConfig
from guard.detect.watermark import GreenListDetector, generate_watermarked, green_z_score, p_value


def test_z_score_closed_form():
    z = green_z_score(np.array([25, 50, 0, 0]), np.array([100, 100, 100, 0]), 0.25)
    sd = math.sqrt(100 * 0.25 * 0.75)
    assert z[:3].tolist() == pytest.approx([0.0, 25 / sd, -25 / sd])
    assert math.isnan(z[3])


def test_p_value_is_the_normal_tail():
    # transformers' own approximation gives 0.265 at z = 1 in some versions; the tail is 0.1587
    assert p_value(np.array([1.0, 4.0])).tolist() == pytest.approx([0.158655, 3.1671e-05], rel=1e-4)


def test_paper_settings_are_the_defaults():
    settings = WatermarkConfig()
    assert (settings.greenlist_ratio, settings.bias, settings.context_width) == (0.25, 2.0, 4)
    assert settings.seeding_scheme == "selfhash" and settings.ignore_repeated_ngrams
    assert settings.z_threshold == 4.0


@pytest.fixture(scope="module")
def watermarked(tiny_lm, stdlib_texts):
    prompts = [text[:20] for text in stdlib_texts[:6]]
    return generate_watermarked(
        tiny_lm.model, tiny_lm.tokenizer, prompts, max_new_tokens=120, min_new_tokens=120
    )


def test_round_trip_on_cpu(tiny_lm, stdlib_texts, watermarked):
    detector = GreenListDetector(tiny_lm)
    assert all(len(text) >= 100 for text in watermarked)  # a character per token (<unk> decodes to nothing)
    found = detector.detect(watermarked)
    assert (found.z >= 4).all() and found.watermarked.all()
    assert (found.p_value < 1e-4).all()
    # 120 tokens of a 64-symbol vocabulary repeat many (seed, token) trials: counted once each
    assert (found.n_scored > 50).all() and (found.n_green <= found.n_scored).all()
    human = detector.detect([text[:400] for text in stdlib_texts[:200]])
    assert human.watermarked.mean() <= 0.01
    assert found.z.min() > np.nanmax(human.z)
    plain = detector.detect(
        [text[20:] for text in tiny_samples(tiny_lm, [t[:20] for t in stdlib_texts[:8]], 120)]
    )
    assert not plain.watermarked.any()


def test_another_key_does_not_see_the_watermark(tiny_lm, watermarked):
    found = GreenListDetector(tiny_lm, WatermarkConfig(hashing_key=12345)).detect(watermarked)
    assert not found.watermarked.any()


def test_texts_too_short_to_score_get_no_z(tiny_lm):
    found = GreenListDetector(tiny_lm).detect(["abc", ""])
    assert np.isnan(found.z).all() and found.n_scored.tolist() == [0, 0] and not found.watermarked.any()
