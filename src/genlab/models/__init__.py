"""Model families. Importing this package registers the built-in ones."""

from genlab.models import vae  # noqa: F401
