"""The one exception type a user may see: its message is printed as one line, exit code 2."""


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
