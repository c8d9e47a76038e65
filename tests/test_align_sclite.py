"""--align sclite: per-utterance S/D/I identical to NIST sclite's.

Against the real ``sclite`` (Debian package ``sctk``, installed by .ci/run) on the Artie
corpus (real references and DeepSpeech 0.5.1 output, 1,712 utterances, many errors) and on
a seeded set of adversarial utterances (tiny vocabulary: ties everywhere); and the
vectorised DP against the plain-Python reading of sclite's code on random inputs.
"""
import csv
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fairaudit import sctk
from fairaudit.align_sclite import sclite_counts, sclite_dp, sclite_ops
from fairaudit.sctk import find_sclite
from fairaudit.normalize import normalize
from fairaudit.scoring import count_errors

from conftest import realdata_dir

ARTIE_SYSTEM = "deepspeech_v0-5-1"


def need_sclite() -> str:
    exe = find_sclite()
    if exe is None:
        pytest.skip("NIST sclite is not installed (Debian: apt-get install sctk; .ci/run installs it)")
    return exe


def flat(seqs):
    off = np.zeros(len(seqs) + 1, np.int64)
    off[1:] = np.cumsum([len(s) for s in seqs])
    return off, np.array([x for s in seqs for x in s], np.int64)


def python_counts(ref, hyp):
    ops = [op for op, _, _ in sclite_ops(ref, hyp)]
    return ops.count("sub"), ops.count("del"), ops.count("ins")


def run_sclite(tmp_path, ids, refs, hyps):
    return sctk.run_sclite(ids, refs, hyps, tmp_path, exe=need_sclite())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=14), st.lists(st.integers(0, 3), max_size=14)),
                min_size=1, max_size=30))
def test_vectorised_dp_equals_python_sclite(pairs):
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    ro, rc = flat(refs)
    ho, hc = flat(hyps)
    s, d = sclite_dp(ro, rc, ho, hc)
    want = [python_counts(r, h) for r, h in pairs]
    assert [(int(a), int(b)) for a, b in zip(s, d)] == [w[:2] for w in want]
    # The filters (Levenshtein slack, weighted cost) change nothing.
    strs = ["".join(chr(65 + x) for x in r) for r in refs], ["".join(chr(65 + x) for x in h) for h in hyps]
    s2, d2 = sclite_counts(ro, rc, ho, hc, *strs)
    assert np.array_equal(s, s2) and np.array_equal(d, d2)


def test_sclite_prefers_substitution_then_insertion_on_ties():
    # "a b" vs "b c": jiwer (Levenshtein) takes 2 substitutions or D+I; sclite's costs
    # make 2 substitutions cost 8 vs D + I = 6, so sclite deletes "a" and inserts "c".
    assert python_counts(["a", "b"], ["b", "c"]) == (0, 1, 1)
    c = count_errors(["a b"], ["b c"], alignment="sclite", workers=1)
    assert (int(c.substitutions[0]), int(c.deletions[0]), int(c.insertions[0])) == (0, 1, 1)
    # An equal-cost tie between 3 substitutions (12) and 2 deletions + 2 insertions (12)
    # goes to the diagonal.
    assert python_counts(["a", "b", "c"], ["x", "y", "z"]) == (3, 0, 0)


def _artie_pairs():
    root = realdata_dir() / "artie"
    read = lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    ref = read(root / "artie-bias-corpus.tsv")
    hyp = read(root / "predictions" / f"{ARTIE_SYSTEM}.tsv")
    ref["stem"] = ref["path"].map(lambda p: os.path.splitext(p)[0])
    hyp["stem"] = hyp["path"].map(lambda p: os.path.splitext(p)[0])
    m = ref.merge(hyp[["stem", "prediction"]], on="stem", how="left", validate="one_to_one")
    assert len(m) == len(ref) and m["prediction"].notna().all()
    speakers = {c: f"s{i:04d}" for i, c in enumerate(sorted(m["client_id"].unique()))}
    # sclite's rm ids: the speaker is the part before the first '-'.
    m["id"] = [f"{speakers[c]}-{s}" for c, s in zip(m["client_id"], m["stem"])]
    m["spk"] = m["client_id"].map(speakers)
    return m


def test_sclite_alignment_equals_real_sclite_on_artie(tmp_path):
    m = _artie_pairs()
    # sclite reads the normalised words (the same normalisation for both); fairaudit
    # scores the raw text with its default normalisation.
    nref = normalize(m["sentence"].tolist()).to_pylist()
    nhyp = normalize(m["prediction"].tolist()).to_pylist()
    utt, spk = run_sclite(tmp_path, m["id"], nref, nhyp)
    assert len(utt) == len(m) == 1712
    c = count_errors(m["sentence"].tolist(), m["prediction"].tolist(), alignment="sclite", workers=1)
    ours = {i: (int(s), int(d), int(n)) for i, s, d, n in zip(m["id"], c.substitutions, c.deletions, c.insertions)}
    differ = [i for i in m["id"] if ours[i] != utt[i]]
    assert not differ, f"{len(differ)} of {len(m)} utterances differ from sclite, e.g. {differ[0]}: " \
                       f"ours {ours[differ[0]]} vs sclite {utt[differ[0]]}"
    # Many errors, so the split is exercised: sclite counts thousands of S, D and I.
    tot = np.array(list(utt.values())).sum(axis=0)
    assert tot.min() > 300, tot
    frame = pd.DataFrame({"spk": m["spk"], "s": c.substitutions, "d": c.deletions, "i": c.insertions})
    per_spk = {k: tuple(int(x) for x in g[["s", "d", "i"]].sum()) for k, g in frame.groupby("spk")}
    assert len(spk) == len(per_spk) == m["spk"].nunique()
    assert per_spk == spk

    # How the jiwer (Levenshtein) split compares, per speaker, on the same set.
    j = count_errors(m["sentence"].tolist(), m["prediction"].tolist(), alignment="jiwer", workers=1)
    frame_j = pd.DataFrame({"spk": m["spk"], "s": j.substitutions, "d": j.deletions, "i": j.insertions})
    per_j = {k: tuple(int(x) for x in g[["s", "d", "i"]].sum()) for k, g in frame_j.groupby("spk")}
    split = sum(per_j[k] != per_spk[k] for k in per_spk)
    total = sum(sum(per_j[k]) != sum(per_spk[k]) for k in per_spk)
    print(f"\nArtie {ARTIE_SYSTEM}: {len(m)} utterances equal to sclite; {split} of {len(per_spk)} speakers have a "
          f"different S/D/I split under --align jiwer, {total} a different total")
    assert split > 0, "on this error-dense set the two alignments must differ somewhere"


def test_sclite_alignment_equals_real_sclite_on_ties(tmp_path):
    # Tiny vocabulary, long-ish utterances, heavy errors: ties between substitution and
    # deletion + insertion on almost every row, the tie rule decides the split.
    rng = np.random.default_rng(17)
    vocab = np.array(["a", "b", "c", "d"])
    refs, hyps = [], []
    for _ in range(6000):
        r = list(rng.choice(vocab, rng.integers(0, 16)))
        h = [w if rng.random() > 0.35 else str(rng.choice(vocab)) for w in r if rng.random() > 0.15]
        h = h + list(rng.choice(vocab, rng.integers(0, 3)))
        refs.append(" ".join(r))
        hyps.append(" ".join(h))
    ids = [f"s{k % 50:04d}-u{k:05d}" for k in range(len(refs))]
    utt, _ = run_sclite(tmp_path, ids, refs, hyps)
    c = count_errors(refs, hyps, "none", alignment="sclite", workers=1)
    ours = {i: (int(s), int(d), int(n)) for i, s, d, n in zip(ids, c.substitutions, c.deletions, c.insertions)}
    differ = [i for i in ids if ours[i] != utt[i]]
    assert not differ, f"{len(differ)} of {len(ids)} differ, e.g. {differ[0]}: {ours[differ[0]]} vs {utt[differ[0]]}"
    j = count_errors(refs, hyps, "none", workers=1)
    assert (j.substitutions != c.substitutions).sum() > 200  # the tie rule matters here
