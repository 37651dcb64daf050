"""nima_enhance: NIMA aesthetic scoring and perceptual image enhancement."""
