"""The one exception type a user may see: its message is printed as one line, exit code 2.

`kdpipe --debug ...` (or KDPIPE_DEBUG=1) also prints the traceback behind it, e.g. of a user's own
model factory that raised.
"""

import os

DEBUG_HINT = " (kdpipe --debug or KDPIPE_DEBUG=1 shows the traceback)"


def debug_enabled() -> bool:
    return os.environ.get("KDPIPE_DEBUG", "") not in ("", "0")


class KdpipeError(Exception):
    """Bad input or an unusable run folder. The message names the problem and where it is."""

    exit_code = 2


class ConfigError(KdpipeError):
    pass


class DataError(KdpipeError):
    pass


class ModelError(KdpipeError):
    pass


class RunFolderError(KdpipeError):
    pass
