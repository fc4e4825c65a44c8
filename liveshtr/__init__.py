"""liveshtr: learn one song's signature, then improvise new sound from it live."""

__version__ = "0.1.0"
