"""Diffusion models: the network (unet.py), the noise math (schedule.py), the samplers
(sampler.py), the family that ties them to the trainer (model.py), and text to image: the
prompt's encoder (text_encoder.py) and the family conditioned on it (text.py)."""

from genlab.models.diffusion.model import Diffusion, DiffusionConfig  # noqa: F401
from genlab.models.diffusion.text import TextDiffusion, TextDiffusionConfig  # noqa: F401
