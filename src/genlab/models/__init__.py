"""Model families. Importing this package registers the built-in ones."""

from genlab.models import ar, diffusion, gan, vae  # noqa: F401
