"""report.json's text: the one-line lists and the timings added to an earlier text."""
from hypothesis import given, settings
from hypothesis import strategies as st

from fairaudit.result import _flat


def test_report_text_with_timings_spliced_is_to_json_with_timings():
    """AuditResult.save_report(body=...): the timings added to an earlier to_json() give
    exactly to_json(timings=True), flat per-speaker lists and all."""
    import fairaudit
    from fairaudit.result import _with_timings

    from conftest import SAMPLE

    r = fairaudit.audit(str(SAMPLE / "utterances.csv"), speakers=str(SAMPLE / "speakers.csv"), by=["gender"],
                        n_boot=20, n_perm=10, heldout_splits=1)
    assert r.timings
    assert _with_timings(r.to_json(), r.timings) == r.to_json(timings=True)
    assert _with_timings(r.to_json(), {}) == r.to_json()



def _flat_by_definition(obj: list) -> bool:
    return all(not isinstance(v, (dict, list)) or
               (isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v)) for v in obj)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=2), inner, max_size=3)),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, min_size=1, max_size=6))
def test_flat_is_the_per_item_definition(obj):
    """The type-set test of which lists go on one line equals the per-item definition."""
    assert _flat(obj) == _flat_by_definition(obj)
