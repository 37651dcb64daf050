"""The remapping module (`data_prep.llf_remap`): the fast method's K."""

from data_prep import llf_remap


def test_default_num_samples_rule():
  assert llf_remap.default_num_samples(1.0, 0.2, alpha=0.5) == 81
  assert llf_remap.default_num_samples(1.0, 0.4, alpha=1.0) == 8
  assert llf_remap.default_num_samples(100.0, 0.01, alpha=0.5) == 128
