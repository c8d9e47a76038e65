"""Alignment counts equal jiwer.process_words, split included, on random and adversarial pairs."""
import jiwer
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fairaudit.normalize import normalize, python_reference_split, split_words, tokenize, PY_WHITESPACE
from fairaudit.scoring import count_errors

# Few distinct words so that repeats (the hard case for the S/D/I split) are common.
small_words = st.sampled_from(["a", "b", "c", "the", "to", "two", "too", "don't", "Ünïcode", "日本", "é", "x-y"])
any_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
seps = st.sampled_from([" ", "  ", "\t", " \t ", "\u00a0", ", ", "\n", "\u3000"])


@st.composite
def sentence(draw, words=small_words, max_words=30):
    ws = draw(st.lists(words, max_size=max_words))
    out = ""
    for w in ws:
        out += w + draw(seps)
    return draw(st.sampled_from(["", " ", "\t"])) + out


def jiwer_counts(ref: str, hyp: str):
    out = jiwer.process_words(ref, hyp)
    return out.hits, out.substitutions, out.deletions, out.insertions


def ours(refs, hyps, mode):
    c = count_errors(refs, hyps, mode, workers=1)
    return [(int(c.hits[i]), int(c.substitutions[i]), int(c.deletions[i]), int(c.insertions[i]))
            for i in range(len(refs))]


def check_against_jiwer(pairs, mode):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    got = ours(refs, hyps, mode)
    nref = normalize(refs, mode).to_pylist()
    nhyp = normalize(hyps, mode).to_pylist()
    for (r, h), g, nr, nh in zip(pairs, got, nref, nhyp):
        if not python_reference_split(nr):
            # jiwer refuses an empty reference; ours reports N = 0 and all insertions.
            assert g == (0, 0, 0, len(python_reference_split(nh)))
            continue
        assert g == jiwer_counts(nr, nh), (r, h, nr, nh)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(), sentence()), min_size=1, max_size=20),
       st.sampled_from(["default", "none"]))
def test_counts_equal_jiwer_repeats(pairs, mode):
    check_against_jiwer(pairs, mode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(any_words, 12), sentence(any_words, 12)), min_size=1, max_size=10),
       st.sampled_from(["default", "none"]))
def test_counts_equal_jiwer_unicode(pairs, mode):
    check_against_jiwer(pairs, mode)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_long_lines_500_words(seed):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]
    ref = list(rng.choice(vocab, 500))
    hyp = [w if rng.random() > 0.2 else str(rng.choice(vocab)) for w in ref]
    hyp = [w for w in hyp if rng.random() > 0.05]
    check_against_jiwer([(" ".join(ref), " ".join(hyp)), (" ".join(hyp), " ".join(ref))], "default")


@pytest.mark.parametrize("ref,hyp,expected", [
    ("", "", (0, 0, 0, 0)),
    ("", "a b", (0, 0, 0, 2)),
    ("a b", "", (0, 0, 2, 0)),
    ("a b", "b c", None),  # two optimal alignments: the split must be jiwer's
    ("a a a a", "a a", None),
    ("Hello, World!", "hello world", (2, 0, 0, 0)),
    ("don't stop", "dont stop", (1, 1, 0, 0)),
    ("'quoted' word", "quoted word", (2, 0, 0, 0)),
])
def test_adversarial_pairs(ref, hyp, expected):
    got = ours([ref], [hyp], "default")[0]
    if expected is not None:
        assert got == expected
    check_against_jiwer([(ref, hyp)], "default")


def test_parallel_path_equals_serial():
    rng = np.random.default_rng(1)
    vocab = np.array([f"v{i}" for i in range(300)])
    refs = [" ".join(rng.choice(vocab, rng.integers(0, 15))) for _ in range(70_000)]
    hyps = [" ".join(w for w in r.split() if rng.random() > 0.1) + (" extra" if rng.random() < 0.1 else "")
            for r in refs]
    a = count_errors(refs, hyps, workers=1)
    b = count_errors(refs, hyps, workers=2)
    for f in ("ref_words", "hits", "substitutions", "deletions", "insertions"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    nonempty = [i for i, r in enumerate(refs) if r]
    j = jiwer.process_words([refs[i] for i in nonempty], [hyps[i] for i in nonempty])
    assert (j.substitutions, j.deletions, j.insertions) == (
        int(a.substitutions[nonempty].sum()), int(a.deletions[nonempty].sum()), int(a.insertions[nonempty].sum()))


def test_whitespace_class_matches_python():
    assert set(PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_none_mode_splits_like_jiwer():
    # A lone tab stays inside a word in jiwer's default transform; two white spaces split.
    assert split_words(normalize(["a\tb  c", " x\u00a0\u00a0y "], "none")).to_pylist() == [["a\tb", "c"], ["x", "y"]]
    assert tokenize(["Don't STOP, 'me' now!"]).to_pylist() == [["don't", "stop", "me", "now"]]


def test_whisper_mode_uses_whisper_normaliser():
    import whisper_normalizer  # noqa: F401 - a core dependency: a broken install fails here
    words = tokenize(["Mr. Smith's colour is twenty-five"], "whisper").to_pylist()[0]
    assert "color" in words and "25" in words


def test_unknown_normalisation_is_user_error():
    from fairaudit.errors import UserInputError
    with pytest.raises(UserInputError, match="unknown normalisation"):
        count_errors(["a"], ["a"], "fancy")
