"""The one exception users see: bad input, told in one line.

Anything raised as `GenlabError` is printed by the CLI as a single line
(`genlab: error: <message>`) with exit status 2 and no traceback. Any other
exception is a bug: exit status 1 with the traceback.

    raise DataError(f"{path}: no images found; point --data at a folder of PNG/JPEG files")
"""


class GenlabError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""


class DataError(GenlabError):
    """A data set that cannot be read or fetched."""


class ConfigError(GenlabError):
    """An unknown key, a wrong type or an impossible value in a configuration."""


class RunError(GenlabError):
    """A run directory that is missing, foreign, already taken or damaged."""


def reason_of(e: BaseException, limit: int | None = 160) -> str:
    """What a library's exception says, on one line of at most ``limit`` characters (all of
    it when None): the part worth quoting inside genlab's own one-line message.

        raise DataError(f"{path}: not a readable image ({reason_of(e)}); ...") from None
    """
    text = " ".join(str(e).split())
    return (text[:limit] if limit else text) or type(e).__name__
