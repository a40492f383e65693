"""Model families. Importing this package registers the built-in ones."""

from genlab.models import diffusion, gan, vae  # noqa: F401
