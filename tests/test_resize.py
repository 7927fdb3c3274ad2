import numpy as np
import pytest

from video2numpy.resize import Resize, center_crop


def test_scaled_size_crop_keeps_short_side():
    assert Resize(224).scaled_size(1280, 720) == (398, 224)
    assert Resize(224).scaled_size(720, 1280) == (224, 398)
    assert Resize(224).scaled_size(250, 141) == (397, 224)


def test_scaled_size_pad_keeps_long_side():
    assert Resize(224, "pad").scaled_size(1280, 720) == (224, 126)
    assert Resize(224, "pad").scaled_size(720, 1280) == (126, 224)


@pytest.mark.parametrize("shape", [(224, 398), (398, 224), (225, 301), (301, 225), (224, 224)])
def test_center_crop_matches_torchvision(shape):
    # CLIP's preprocessing is torchvision's CenterCrop: the same offsets, to the pixel.
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("torchvision.transforms.functional")
    frame = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    ours = center_crop(frame, 224)
    theirs = tf.center_crop(torch.from_numpy(frame).permute(2, 0, 1), [224, 224])
    assert np.array_equal(ours, theirs.permute(1, 2, 0).numpy())


def test_pad_centres_the_picture():
    frame = np.full((126, 224, 3), 200, dtype=np.uint8)
    out = Resize(224, "pad").finish(frame)
    assert out.shape == (224, 224, 3)
    rows = np.flatnonzero(out[:, 112, 0])
    assert (rows[0], rows[-1]) == (49, 174)  # 49 black rows above, 49 below


def test_native_is_untouched():
    frame = np.zeros((141, 250, 3), dtype=np.uint8)
    assert Resize(224, "native").finish(frame) is frame
    assert Resize(224, "native").output_shape(250, 141) == (141, 250, 3)


def test_bad_mode():
    with pytest.raises(ValueError):
        Resize(224, "stretch")
