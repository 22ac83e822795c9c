"""The package's version, at the bottom: the root package, the command line and tracing read it."""

__version__ = "0.1.0"
