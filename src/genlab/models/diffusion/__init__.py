"""Diffusion models: the network (unet.py), the noise math (schedule.py), the samplers
(sampler.py) and the family that ties them to the trainer (model.py)."""

from genlab.models.diffusion.model import Diffusion, DiffusionConfig  # noqa: F401
