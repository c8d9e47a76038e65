"""Orchestration: inputs -> scored set -> (discoverers) -> audit result."""
from __future__ import annotations

from .io.readers import InputSpec, read_utterances
from .io.speakers import read_speakers
from .speakers import ScoredSet, score


def score_input(spec: InputSpec, normalization: str = "default", speakers_path: str | None = None,
                required_attributes: tuple[str, ...] | list[str] = (), *, workers: int | None = None,
                progress=None) -> ScoredSet:
    """Read ``spec`` (and the speaker table), score every utterance, build the speaker table."""
    raw = read_utterances(spec)
    speaker_table = read_speakers(speakers_path, fmt=None) if speakers_path else None
    return score(raw, normalization, speaker_table, required_attributes, workers=workers, progress=progress)
