"""Limits on one studio request: a studio is for looking, not for bulk sampling (that is
`genlab sample`). A value past any of them is refused with a line naming it."""

from pydantic import BaseModel, ConfigDict

MAX_IMAGES = 64
MAX_API_IMAGES = 16  # /v1/images/generations: OpenAI's n takes 1 to 10; genlab's, 1 to 16
MAX_TEXTS = 8
MAX_STEPS = 1000  # diffusion sampling steps
MAX_NEW_TOKENS = 2048
MAX_PROMPT = 4000  # characters
MAX_STOPS = 4
MAX_FRAMES = 32  # interpolation frames, variations
MAX_STRIP = 8  # settings in one strip
MAX_SEED = 2**63 - 1
MAX_TRIALS = 10_000  # open judgement trials kept in memory


class Strict(BaseModel):
    """A request body whose unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")
