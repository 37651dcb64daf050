"""The enhancer beside models/, data/, train/, serving/: one module per concern.

`inference` (restore a CAN, enhance in bounded memory, write files), `train`
(enhance-train's code path), `evaluate` (PSNR, SSIM, NIMA statistics,
enhance-eval), `sweep` (gamma-sweep) and `report` (figures). The public
`nima_enhance.Enhancer` (api.py) wraps `inference`.
"""
