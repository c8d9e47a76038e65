"""fairaudit: audit speech recognisers for performance fairness.

Library entry points (no printing, no exits):

* :func:`audit` scores a decoded test set, runs the cohort discoverers and returns an
  :class:`AuditResult` (report dict, pandas tables, ``to_json()``);
* :func:`score_input` reads and scores only;
* :func:`count_errors` gives jiwer-exact alignment counts for pairs of strings.
"""
__version__ = "0.1.0"

from .errors import UserInputError  # noqa: E402
from .io.readers import InputSpec  # noqa: E402
from .scoring import count_errors  # noqa: E402
from .result import AuditResult  # noqa: E402
from .audit import audit, score_input  # noqa: E402

__all__ = ["AuditResult", "InputSpec", "UserInputError", "audit", "count_errors", "score_input", "__version__"]
