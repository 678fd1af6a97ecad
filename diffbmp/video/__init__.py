"""Video: painting a sequence of frames with primitives that stay put from frame to frame.

>>> import diffbmp                                                    # doctest: +SKIP
>>> result = diffbmp.fit_video("clip.mp4", ["circle"], n=800, steps=400,
...                            video={"steps_per_frame": 50}, out="runs/clip")
>>> result.psnrs, result.flicker, result.paths["painted_mp4"]

``diffbmp fit config.yaml`` does the same when the config's target is a video. The first
frame is an ordinary image fit; each later frame starts from the previous painting, carried
along by the optical flow, and is refined with a temporal loss that keeps primitives still
where the target did not change. docs/video.md is the guide.

Modules: :mod:`~diffbmp.video.sources` (reading frames), :mod:`~diffbmp.video.demo`
(generated clips), :mod:`~diffbmp.video.flow` (optical flow), :mod:`~diffbmp.video.temporal`
(the temporal loss), :mod:`~diffbmp.video.carry` (from one frame to the next),
:mod:`~diffbmp.video.metrics` (flicker), :mod:`~diffbmp.video.outputs` (the run folder) and
:mod:`~diffbmp.video.sequence` (the loop).
"""

from .carry import FrameStart, carry_over, flow_shift
from .demo import DEMO_CLIPS, demo_frames, make_demo_clip
from .flow import optical_flow, warp
from .metrics import flicker, mean_flicker, static_pixels
from .sequence import VideoResult, fit_video, later_frame_config, run_video
from .sources import Clip, FrameSelection, load_clip, load_frame_maps, natural_key, video_kind
from .temporal import TemporalCosts, change_map, footprint_means, footprint_sums, hold_loss, hold_map, penalty_weights, temporal_loss

__all__ = [
    "Clip",
    "DEMO_CLIPS",
    "FrameSelection",
    "FrameStart",
    "TemporalCosts",
    "VideoResult",
    "carry_over",
    "change_map",
    "demo_frames",
    "fit_video",
    "flicker",
    "flow_shift",
    "footprint_means",
    "footprint_sums",
    "hold_loss",
    "hold_map",
    "later_frame_config",
    "load_clip",
    "load_frame_maps",
    "make_demo_clip",
    "mean_flicker",
    "natural_key",
    "optical_flow",
    "penalty_weights",
    "run_video",
    "static_pixels",
    "temporal_loss",
    "video_kind",
    "warp",
]
