"""Former path of the gamma sweep: now `nima_enhance.enhance.sweep` (re-export
kept for code that still imports this path: bin/gamma_sweep.py, tests)."""

# pylint: disable=unused-import,wildcard-import
from nima_enhance.enhance.sweep import gamma_dir
from nima_enhance.enhance.sweep import parse_gammas
from nima_enhance.enhance.sweep import run_sweep
from nima_enhance.enhance.sweep import sweep_gammas
from nima_enhance.enhance.sweep import write_table
