"""Character and mixed units: counts equal jiwer on the same transformed strings, split included."""
import jiwer
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fairaudit.errors import UserInputError
from fairaudit.normalize import normalize
from fairaudit.scoring import count_errors
from fairaudit.units import UNSPACED_RANGES, is_unspaced, python_tokens, tokenize

# Few distinct words and characters so that repeats (the hard case for the split) are common;
# CJK, kana and Thai for the mixed unit, combining marks and odd white space for the char unit.
small_words = st.sampled_from(["a", "ab", "ba", "the", "to", "don't", "é", "e\u0301", "日本", "北京", "欢迎",
                               "カタカナ", "ひら", "สวัสดี", "x-y", "Ünï", "\U000F0001", "\U0010FFFD"])
any_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
seps = st.sampled_from([" ", "  ", "\t", " \t ", "\u00a0", ", ", "\u3000", "。", ""])


@st.composite
def sentence(draw, words=small_words, max_words=12):
    ws = draw(st.lists(words, max_size=max_words))
    return draw(st.sampled_from(["", " ", "\t"])) + "".join(w + draw(seps) for w in ws)


def ours(refs, hyps, mode, unit, alignment="jiwer"):
    c = count_errors(refs, hyps, mode, workers=1, unit=unit, alignment=alignment)
    return [(int(c.ref_words[i]), int(c.hits[i]), int(c.substitutions[i]), int(c.deletions[i]),
             int(c.insertions[i])) for i in range(len(refs))]


def check_char(pairs, mode):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    got = ours(refs, hyps, mode, "char")
    for g, nr, nh in zip(got, normalize(refs, mode).to_pylist(), normalize(hyps, mode).to_pylist()):
        # jiwer's own character transform on the normalised strings.
        out = jiwer.process_characters(nr, nh)
        assert g[0] == len(jiwer.cer_default(nr)[0]), (nr, nh)
        assert g[1:] == (out.hits, out.substitutions, out.deletions, out.insertions), (nr, nh)


def check_mixed(pairs, mode):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    got = ours(refs, hyps, mode, "mixed")
    for g, nr, nh in zip(got, normalize(refs, mode).to_pylist(), normalize(hyps, mode).to_pylist()):
        rt, ht = python_tokens(nr, "mixed"), python_tokens(nh, "mixed")
        if not rt:
            assert g == (0, 0, 0, 0, len(ht))
            continue
        # jiwer on the tokens joined by spaces: each unspaced-script character is a word.
        out = jiwer.process_words(" ".join(rt), " ".join(ht))
        assert g == (len(rt), out.hits, out.substitutions, out.deletions, out.insertions), (nr, nh)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(), sentence()), min_size=1, max_size=15), st.sampled_from(["default", "none"]))
def test_char_counts_equal_jiwer_process_characters(pairs, mode):
    check_char(pairs, mode)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(any_words), sentence(any_words)), min_size=1, max_size=8),
       st.sampled_from(["default", "none"]))
def test_char_counts_equal_jiwer_any_unicode(pairs, mode):
    check_char(pairs, mode)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(), sentence()), min_size=1, max_size=15), st.sampled_from(["default", "none"]))
def test_mixed_counts_equal_jiwer_on_spaced_tokens(pairs, mode):
    check_mixed(pairs, mode)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(sentence(any_words), sentence(any_words)), min_size=1, max_size=8),
       st.sampled_from(["default", "none"]))
def test_mixed_counts_equal_jiwer_any_unicode(pairs, mode):
    check_mixed(pairs, mode)


def test_char_keeps_inner_spaces_as_jiwer_does():
    # jiwer's CER strips the ends only: under `none` a double space is two characters.
    (n, h, s, d, i), = ours(["a  b"], ["a b"], "none", "char")
    assert (n, h, s, d, i) == (4, 3, 0, 1, 0)
    (n, h, s, d, i), = ours(["Hello, World!"], ["hello world"], "default", "char")
    assert (n, h, s, d, i) == (11, 11, 0, 0, 0)


def test_mixed_splits_chinese_and_keeps_english_words():
    assert tokenize(["我喜欢 machine learning 和 Python。"], "default", "mixed") == [
        ["我", "喜", "欢", "machine", "learning", "和", "python"]]
    # One wrong character in a Mandarin-English sentence: 1 error in 7 tokens, not 1 in 4 words.
    (n, h, s, d, i), = ours(["我喜欢 machine learning"], ["我喜换 machine learning"], "default", "mixed")
    assert (n, s, d, i) == (5, 1, 0, 0)
    (n, h, s, d, i), = ours(["我喜欢 machine learning"], ["我喜换 machine learning"], "default", "word")
    assert (n, s) == (3, 1)


def test_unspaced_ranges_cover_the_scripts_and_not_spaced_ones():
    for ch in "中日本語ひらがなカタカナｶﾀｶﾅสวัสดีລາວខ្មែរမြန်မာㄅㄆ\U00020000":
        assert is_unspaced(ch), ch
    for ch in "aZé한글Ωж0 ,":
        assert not is_unspaced(ch), ch
    assert all(a <= b for a, b, _ in UNSPACED_RANGES)
    starts = sorted(a for a, _, _ in UNSPACED_RANGES)
    ends = [b for a, b, _ in sorted(UNSPACED_RANGES)]
    assert all(e < s for e, s in zip(ends, starts[1:])), "ranges overlap"


def test_ascii_mixed_equals_words():
    rng = np.random.default_rng(3)
    vocab = ["alpha", "beta", "Gamma", "don't", "x-ray", "it's"]
    refs = [" ".join(rng.choice(vocab, rng.integers(0, 9))) for _ in range(300)]
    hyps = [" ".join(rng.choice(vocab, rng.integers(0, 9))) for _ in range(300)]
    assert ours(refs, hyps, "default", "mixed") == ours(refs, hyps, "default", "word")


def test_parallel_char_equals_serial():
    rng = np.random.default_rng(5)
    alphabet = list("abc 日本")
    refs = ["".join(rng.choice(alphabet, rng.integers(0, 12))) for _ in range(65_000)]
    hyps = ["".join(c for c in r if rng.random() > 0.1) for r in refs]
    a = count_errors(refs, hyps, workers=1, unit="char")
    b = count_errors(refs, hyps, workers=2, unit="char")
    for f in ("ref_words", "hits", "substitutions", "deletions", "insertions"):
        assert np.array_equal(getattr(a, f), getattr(b, f))


@pytest.mark.parametrize("kw,match", [({"unit": "syllable"}, "unknown unit"), ({"alignment": "kaldi"}, "unknown alignment")])
def test_unknown_unit_or_alignment_is_user_error(kw, match):
    with pytest.raises(UserInputError, match=match):
        count_errors(["a"], ["a"], **kw)
