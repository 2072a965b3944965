"""The trainer's configuration error (its own module so config and distributed share it without
importing each other)."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""
