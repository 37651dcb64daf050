"""A Halide peer of the fast local Laplacian, for `local_laplacian.py` only.

Written here from the algorithm (Paris, Hasinoff & Kautz 2011; the sampled
form of Aubry et al. 2014, as `data_prep.local_laplacian` documents it), not
taken from Halide's own app: the same definition as the project's fast path,
so the two outputs can be compared sample for sample.

* Gaussian pyramid of the intensity I = (20 R + 40 G + B) / 61;
* K remapped images r_{g_k}(I) at references g_k evenly spaced over [min I,
  max I], each remapping read from the project's own table of r_0 (the same
  curve and quantisation, `data_prep.llf_remap._tabulated`) and their
  Gaussian pyramids;
* every output Laplacian coefficient interpolated linearly between the two
  references that bracket its Gaussian-pyramid value (the band of a remapped
  image is evaluated only there: it is inlined, Halide computes it on
  demand);
* the input's own residual at the top, the collapse, and the colour ratios
  RGB / I restored (clipped to [0, 1]).

Filters: the 5-tap kernel [0.05, 0.25, 0.4, 0.25, 0.05] down and its
(x2) upsampling taps 0.1/0.8/0.1 (even) and 0.5/0.5 (odd), mirrored without
repeating the border sample, as `data_prep.pyramid`.

Schedule (hand-written, CPU): every remapped level G_j (j >= 1) is computed
whole ([x, y, k] storage), by strips of 32 rows that are parallel; in a strip
the horizontal reduction and, at level 1, the remapped rows of level 0 are
kept in a sliding window (each computed once); the input's Gaussian levels and
the collapsed output levels are computed whole, vectorised along x; the
bands and the interpolation are inlined into the collapse. The benchmark runs
it on one thread (HL_NUM_THREADS=1 before the first run).

The pipeline is JIT-compiled once per depth (K is a parameter) and reused;
compilation is not timed in the speed rows (the benchmark records it per
depth: 12-17 s of CPU time each, 46-176 s wall with other jobs loading the
2 cores; most of it LLVM on the inlined bands).

Needs the `halide` pip package (the `[bench]` extra); importing this module
without it raises ImportError.
"""

import functools
import importlib

import halide as hl
import numpy as np

from data_prep import llf_remap

llf = importlib.import_module("data_prep.local_laplacian")

_STRIP = 32  # Rows per parallel strip of a remapped level.
_F = hl.f32  # float32 constants (as the project's numpy code).


def _mirror(i, n):
  """Mirror index i into [0, n) without repeating the border (n >= 2)."""
  i = hl.select(i < 0, -i, i)
  # The clamp changes nothing but tells bounds inference the range.
  return hl.clamp(hl.select(i > n - 1, 2 * (n - 1) - i, i), 0, n - 1)


def _down_x(f, n, name):
  """Kept (even) samples of the 5-tap reduction of f along x (size n)."""
  x, y, k = hl.Var("x"), hl.Var("y"), hl.Var("k")
  out = hl.Func(name)
  at = lambda d: f[_mirror(2 * x + d, n), y, k]  # noqa: E731
  out[x, y, k] = (_F(0.4) * at(0) + _F(0.25) * (at(-1) + at(1))
                  + _F(0.05) * (at(-2) + at(2)))
  return out, (x, y, k)


def _down_y(f, n, name):
  x, y, k = hl.Var("x"), hl.Var("y"), hl.Var("k")
  out = hl.Func(name)
  at = lambda d: f[x, _mirror(2 * y + d, n), k]  # noqa: E731
  out[x, y, k] = (_F(0.4) * at(0) + _F(0.25) * (at(-1) + at(1))
                  + _F(0.05) * (at(-2) + at(2)))
  return out, (x, y, k)


def _up_weights(i):
  """(w[m-1], w[m], w[m+1]) of fine sample i = 2m or 2m + 1."""
  odd = (i % 2) == 1
  return (hl.select(odd, _F(0.0), _F(0.1)), hl.select(odd, _F(0.5), _F(0.8)),
          hl.select(odd, _F(0.5), _F(0.1)))


def _up_expr(sample, i, n):
  """Upsampled value at fine index i from `sample(coarse index)` (size n)."""
  m = i // 2
  wa, wb, wc = _up_weights(i)
  return (wa * sample(_mirror(m - 1, n)) + wb * sample(m)
          + wc * sample(_mirror(m + 1, n)))


def _up2d(f, w, h, name):
  """Separable upsampling of f[x, y] (coarse w x h) as a Func, y first."""
  x, y = hl.Var("x"), hl.Var("y")
  up_y = hl.Func(name + "_y")
  up_y[x, y] = _up_expr(lambda j: f[x, j], y, h)
  out = hl.Func(name)
  out[x, y] = _up_expr(lambda i: up_y[i, y], x, w)
  return out, up_y, (x, y)


@functools.lru_cache(maxsize=None)
def build(levels: int):
  """(pipeline, params) of the filter at this depth (any K), JIT-compiled."""
  rgb = hl.ImageParam(hl.Float(32), 3, "rgb")  # rgb[c, x, y], c innermost.
  lut = hl.ImageParam(hl.Float(32), 1, "lut")
  lo, step = hl.Param(hl.Float(32), "lo"), hl.Param(hl.Float(32), "step")
  scale = hl.Param(hl.Float(32), "scale")  # Table samples per unit.
  half = hl.Param(hl.Int(32), "half")  # Table index of r_0(0).
  k = hl.Param(hl.Int(32), "k")  # References K (>= 2).
  x, y, c, kv = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("k")

  sizes = [(rgb.dim(1).extent(), rgb.dim(2).extent())]
  for _ in range(levels - 1):
    w, h = sizes[-1]
    sizes.append(((w + 1) // 2, (h + 1) // 2))

  gray = hl.Func("gray")
  gray[x, y] = (rgb[0, x, y] * _F(20.0 / 61.0) + rgb[1, x, y] * _F(40.0 / 61.0)
                + rgb[2, x, y] * _F(1.0 / 61.0))

  # r_g(v) = g + F(v - g), F from the table on the project's quantised grid.
  ref = lambda j: lo + hl.cast(hl.Float(32), j) * step  # noqa: E731
  index = hl.cast(hl.Int(32), hl.round((gray[x, y] - ref(kv)) * scale)) + half
  value = lut[hl.clamp(index, 0, lut.dim(0).extent() - 1)] + ref(kv)
  # Two Funcs of one definition: rows kept for the reduction to level 1, and
  # the inlined values at each pixel's two references for the level-0 band.
  remapped, remapped_at = hl.Func("remapped"), hl.Func("remapped_at")
  remapped[x, y, kv] = value
  remapped_at[x, y, kv] = value

  # Gaussian pyramids: of the input (2-D) and of every remapped image (3-D).
  in_g = [hl.Func("in_g0")]
  in_g[0][x, y] = gray[x, y]
  in_dx = []
  for j in range(1, levels):
    w, h = sizes[j - 1]
    dx = hl.Func(f"in_dx{j}")
    dx[x, y] = (_F(0.4) * in_g[j - 1][_mirror(2 * x, w), y]
                + _F(0.25) * (in_g[j - 1][_mirror(2 * x - 1, w), y]
                              + in_g[j - 1][_mirror(2 * x + 1, w), y])
                + _F(0.05) * (in_g[j - 1][_mirror(2 * x - 2, w), y]
                              + in_g[j - 1][_mirror(2 * x + 2, w), y]))
    g = hl.Func(f"in_g{j}")
    g[x, y] = (_F(0.4) * dx[x, _mirror(2 * y, h)]
               + _F(0.25) * (dx[x, _mirror(2 * y - 1, h)]
                             + dx[x, _mirror(2 * y + 1, h)])
               + _F(0.05) * (dx[x, _mirror(2 * y - 2, h)]
                             + dx[x, _mirror(2 * y + 2, h)]))
    in_dx.append(dx)
    in_g.append(g)

  g_pyr, g_dx = [remapped], []
  for j in range(1, levels):
    w, h = sizes[j - 1]
    dx, _ = _down_x(g_pyr[j - 1], w, f"g_dx{j}")
    g, _ = _down_y(dx, h, f"g{j}")
    g_dx.append(dx)
    g_pyr.append(g)

  # Output bands: each coefficient from its two bracketing references; the
  # band G_j - up(G_{j+1}) of a remapped image is inlined at those two.
  out_l = []
  for j in range(levels - 1):
    w1, h1 = sizes[j + 1]
    pos = hl.clamp((in_g[j][x, y] - lo) / step, _F(0.0), hl.cast(hl.Float(32), k - 1))
    j0 = hl.min(hl.cast(hl.Int(32), pos), k - 2)
    t = pos - hl.cast(hl.Float(32), j0)

    def band(jj, j=j, w1=w1, h1=h1):
      coarse = g_pyr[j + 1]
      fine = remapped_at if j == 0 else g_pyr[j]
      up = _up_expr(
          lambda jy: _up_expr(lambda jx: coarse[jx, jy, jj], x, w1), y, h1)
      return fine[x, y, jj] - up

    lf = hl.Func(f"out_l{j}")
    lf[x, y] = (_F(1.0) - t) * band(j0) + t * band(j0 + 1)
    out_l.append(lf)

  # Collapse from the input's residual.
  out_g = [None] * levels
  up_funcs = []
  out_g[levels - 1] = in_g[levels - 1]
  for j in range(levels - 2, -1, -1):
    w1, h1 = sizes[j + 1]
    up, up_y, _ = _up2d(out_g[j + 1], w1, h1, f"out_up{j}")
    og = hl.Func(f"out_g{j}")
    og[x, y] = out_l[j][x, y] + up[x, y]
    out_g[j] = og
    up_funcs.append((up_y, og))

  output = hl.Func("output")
  gain = hl.max(out_g[0][x, y], _F(0.0)) / (gray[x, y] + _F(1e-7))
  output[c, x, y] = hl.clamp(rgb[c, x, y] * gain, _F(0.0), _F(1.0))

  # Schedule.
  vec = 16 if hl.get_host_target().has_feature(hl.TargetFeature.AVX512) else 8
  yo, yi = hl.Var("yo"), hl.Var("yi")
  gray.compute_root().vectorize(x, vec)
  for j in range(1, levels):
    in_g[j].compute_root().vectorize(x, vec)
    in_dx[j - 1].compute_at(in_g[j], y).vectorize(x, vec)
  for j in range(1, levels):
    g, dx = g_pyr[j], g_dx[j - 1]
    g.compute_root().reorder(x, y, kv).split(y, yo, yi, _STRIP).parallel(
        yo).vectorize(x, vec)
    dx.store_at(g, yo).compute_at(g, yi).vectorize(x, vec)
    if j == 1:
      remapped.store_at(g, yo).compute_at(g, yi).vectorize(x, vec)
  for j in range(levels - 1):
    out_g[j].compute_root().split(y, yo, yi, _STRIP).parallel(yo).vectorize(
        x, vec)
  for up_y, og in up_funcs:
    up_y.compute_at(og, yo).vectorize(x, vec)
  output.compute_root().reorder(c, x, y).bound(c, 0, 3).unroll(c).split(
      y, yo, yi, _STRIP).parallel(yo).vectorize(x, vec)

  pipeline = hl.Pipeline(output)
  pipeline.compile_jit(hl.get_jit_target_from_environment())
  return pipeline, dict(rgb=rgb, lut=lut, lo=lo, step=step, scale=scale,
                        half=half, k=k)


def local_laplacian(image: np.ndarray, levels: int, num_samples: int,
                    sigma_r: float, alpha: float, beta: float,
                    out: np.ndarray = None) -> np.ndarray:
  """The detail-domain filter of `data_prep.local_laplacian.local_laplacian`
  (domain "linear", fast method) run by the Halide pipeline.

  Args:
    image: float32 RGB [h, w, 3] in [0, 1], C-contiguous.
    levels, num_samples: pyramid depth and K.
    sigma_r, alpha, beta: the remapping curve (the project's `remap`).
    out: optional float32 [h, w, 3] to write into (no allocation).
  """
  image = np.ascontiguousarray(image, dtype=np.float32)
  pipeline, p = build(levels)
  lum = llf.intensity(image)
  lo, hi = float(lum.min()), float(lum.max())
  span = max(hi - lo, 1e-6)
  remap_fn = lambda v, g: llf_remap.remap(  # noqa: E731
      v, g, sigma_r, alpha, beta)
  fn, _ = llf_remap._tabulated(  # pylint: disable=protected-access
      remap_fn, span)
  p["rgb"].set(hl.Buffer(image))
  table = np.ascontiguousarray(fn.table, dtype=np.float32)
  p["lut"].set(hl.Buffer(table))
  p["lo"].set(lo)
  p["step"].set(span / (num_samples - 1))
  p["scale"].set(float(1.0 / fn.inv))
  p["half"].set(int(fn.half))
  p["k"].set(int(num_samples))
  if out is None:
    out = np.empty_like(image)
  pipeline.realize(hl.Buffer(out))
  return out
