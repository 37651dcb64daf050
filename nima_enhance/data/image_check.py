"""The strict decode of every input file once, cached in a JSON manifest.

`check_files` runs `images.read_image` on each file in threads and keeps the
verdict (None: usable, else the one-line reason) per (absolute path, size,
mtime, pixel limit), so a rerun decodes only files that changed. The FiveK
pair check uses it; it lives above `images` (whose decoder it runs) and
`image_files` (whose pixel limit it applies), so neither imports it back.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Callable, Dict, Optional, Sequence

from nima_enhance.data import image_files
from nima_enhance.data import image_write
from nima_enhance.data import images


def _verdict(path: str, max_pixels: Optional[int]) -> Optional[str]:
  try:
    images.read_image(path, max_pixels=max_pixels)
  except images.ImageReadError as err:
    return str(err)
  return None


def check_files(paths: Sequence[str], cache_file: Optional[str] = None,
                num_threads: int = 8, max_pixels: Optional[int] = None,
                check: Optional[Callable[[str], Optional[str]]] = None,
                log: Callable[[str], None] = lambda _: None
               ) -> Dict[str, Optional[str]]:
  """Strictly decodes every file once: path -> None (usable) or the reason.

  Verdicts are cached in `cache_file` (JSON, keyed by absolute path, size,
  mtime and the pixel limit) so a rerun only decodes files that changed.

  Args:
    paths: files to check.
    cache_file: manifest path; None disables caching.
    num_threads: decoding threads (JPEG decodes are serialised while libjpeg's
      warnings are captured; the others run in parallel).
    max_pixels: pixel limit (default: image_files.get_max_pixels()).
    check: the per-file check (default: images.read_image's verdict).
    log: progress messages.
  """
  limit = max_pixels or image_files.get_max_pixels()
  check = check or (lambda p: _verdict(p, limit))
  cached: Dict[str, list] = {}
  if cache_file and os.path.isfile(cache_file):
    try:
      with open(cache_file, "r", encoding="utf-8") as f:
        content = json.load(f)
      if content.get("version") == 2:
        cached = content.get("files", {})
    except (OSError, ValueError):
      pass  # a damaged cache is rebuilt
  verdicts: Dict[str, Optional[str]] = {}
  todo = []
  for path in paths:
    try:
      st = os.stat(path)
      key = [st.st_size, int(st.st_mtime_ns), limit]
    except OSError as err:
      verdicts[path] = f"{path}: cannot read ({err.strerror})"
      continue
    entry = cached.get(os.path.abspath(path))
    if entry is not None and entry[:3] == key:
      verdicts[path] = entry[3]
    else:
      todo.append((path, key))
  if todo:
    log(f"checking {len(todo)} image files ({len(paths) - len(todo)} cached)")
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      for (path, key), verdict in zip(todo, pool.map(lambda t: check(t[0]),
                                                      todo)):
        verdicts[path] = verdict
        cached[os.path.abspath(path)] = key + [verdict]
    if cache_file:
      payload = json.dumps({"version": 2, "files": cached})
      try:
        image_write.atomic_write_bytes(cache_file, payload.encode("utf-8"))
      except OSError as err:
        log(f"could not cache the manifest at {cache_file}: {err.strerror}")
  return verdicts
