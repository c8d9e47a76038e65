"""fairaudit: audit speech recognisers for performance fairness.

Library entry points (no printing, no exits): :func:`score_input` reads and scores a
decoded test set; :func:`count_errors` gives jiwer-exact alignment counts.
"""
from .errors import UserInputError
from .io.readers import InputSpec
from .scoring import count_errors
from .audit import score_input

__version__ = "0.1.0"

__all__ = ["InputSpec", "UserInputError", "count_errors", "score_input", "__version__"]
