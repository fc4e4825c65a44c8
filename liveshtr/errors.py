"""User-facing errors: each one is reported as a single line and exit status 2, never a traceback."""


class LiveshtrError(Exception):
    """A mistake in what the user gave us (a file, a flag, a bundle), worded so they can fix it."""


class AudioError(LiveshtrError):
    """An audio file that cannot be used: missing, unreadable, silent, too short, non-finite."""


class ConfigError(LiveshtrError):
    """A setting that cannot work, such as a hop longer than its frame."""
