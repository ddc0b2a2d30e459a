"""LoopKit: the open standard for autonomous AI agent loops."""

__version__ = "0.1.0"
