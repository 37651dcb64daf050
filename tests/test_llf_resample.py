"""The fast pyramid steps (`data_prep.llf_resample`) against `pyramid`."""

import numpy as np
import pytest

from data_prep import llf_resample
from data_prep import pyramid


@pytest.mark.parametrize("shape", [(3, 4), (5, 7), (8, 8), (17, 10), (33, 64)])
def test_fast_pyramid_steps_match_pyramid(shape):
  rng = np.random.default_rng(0)
  x = rng.random((4,) + shape).astype(np.float32)
  np.testing.assert_allclose(llf_resample._downsample(x),
                             pyramid.downsample(x), atol=1e-6)
  coarse = pyramid.downsample(x)
  np.testing.assert_array_equal(llf_resample._upsample(coarse, shape),
                                pyramid.upsample(coarse, shape))
