"""Former path of the enhancement figures: now `nima_enhance.enhance.report`
(re-export kept for code that still imports this path)."""

# pylint: disable=unused-import
from nima_enhance.enhance.report import box_plot
from nima_enhance.enhance.report import comparison_grid
from nima_enhance.enhance.report import sweep_plot
