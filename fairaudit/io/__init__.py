"""Readers and writers: the only place that touches files."""
from .readers import InputSpec, RawUtterances, detect_format, read_utterances
from .speakers import read_speakers
from .writers import write_table

__all__ = ["InputSpec", "RawUtterances", "detect_format", "read_utterances", "read_speakers", "write_table"]
