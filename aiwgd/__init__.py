"""aiwgd: a local automation daemon for software projects."""

__version__ = "0.1.0"
