"""Synthetic test sets that look real (METHODS.md): speakers differ in error rate
(per-speaker rate ~ Beta with concentration 20), utterances per speaker vary, effects are
moderate (x1.5) and planted cohorts small (~10 %); every input a discoverer can use is
there (lat/lon, zip + census, embeddings, attributes, a per-speaker SNR side table)."""
from __future__ import annotations

import numpy as np
import pandas as pd

CONCENTRATION = 20.0


def census_table(rng: np.random.Generator, n_zips: int = 60) -> pd.DataFrame:
    zips = np.array([f"{z:05d}" for z in rng.choice(np.arange(10000, 99999), n_zips, replace=False)], dtype=object)
    major = rng.choice(3, n_zips, p=[0.6, 0.25, 0.15])
    shares = rng.dirichlet(np.ones(3), n_zips) * 0.4
    shares[np.arange(n_zips), major] += 0.6
    return pd.DataFrame({"zip": zips, "pct_white": shares[:, 0], "pct_black": shares[:, 1],
                         "pct_hispanic": shares[:, 2],
                         "median_income": np.round(rng.lognormal(np.log(60000), 0.35, n_zips), -2)})


def make_world(n: int = 400, seed: int = 0, plant: str | None = None, effect: float = 1.5, share: float = 0.10,
               mean_wer: float = 0.10, candidate_effect: float = 1.0):
    """(speakers, utterances, census, embeddings, embedding ids, snr table, planted ids).

    ``speakers``: speaker_id, lat, lon, zip, gender, age_band.  ``utterances``: utt_id,
    speaker_id, ref_words, errors (system A) and errors_b (system B = A's rates x
    ``candidate_effect``).  ``plant``: None (no disparity) or "snr" (the ``share`` of
    speakers with the lowest SNR have their error rate x ``effect``).
    """
    rng = np.random.default_rng(seed)
    census = census_table(rng)
    ids = np.array([f"spk{i:05d}" for i in range(n)], dtype=object)
    blob = rng.integers(0, 6, n)
    emb = (np.random.default_rng(99).normal(size=(6, 8))[blob] + 0.5 * rng.normal(size=(n, 8))).astype(np.float32)
    snr = rng.normal(20.0, 6.0, n)
    rate = rng.beta(CONCENTRATION * mean_wer, CONCENTRATION * (1 - mean_wer), n)
    planted = np.zeros(n, dtype=bool)
    if plant == "snr":
        planted[np.argsort(snr)[:int(round(share * n))]] = True
    elif plant is not None:
        raise ValueError(plant)
    rate = np.minimum(np.where(planted, rate * effect, rate), 0.95)
    m = rng.integers(2, 13, n)                       # utterances per speaker vary
    spk = np.repeat(np.arange(n), m)
    words = rng.integers(5, 21, len(spk))
    errors = rng.binomial(words, rate[spk])
    errors_b = rng.binomial(words, np.minimum(rate[spk] * candidate_effect, 0.95))
    utterances = pd.DataFrame({"utt_id": [f"u{i:07d}" for i in range(len(spk))], "speaker_id": ids[spk],
                               "ref_words": words, "errors": errors, "errors_b": errors_b})
    speakers = pd.DataFrame({"speaker_id": ids, "lat": rng.uniform(25.0, 48.0, n), "lon": rng.uniform(-124.0, -67.0, n),
                             "zip": census["zip"].to_numpy()[rng.integers(0, len(census), n)],
                             "gender": rng.choice(["female", "male"], n),
                             "age_band": rng.choice(["18-29", "30-44", "45-64", "65+"], n)})
    snr_table = pd.DataFrame({"speaker_id": ids, "snr_db": np.round(snr, 3)})
    return speakers, utterances, census, emb, ids.copy(), snr_table, set(ids[planted])


def write_world(folder, n: int = 400, seed: int = 0, **kw) -> dict:
    """Write :func:`make_world` as files; returns their paths (str) and the planted ids."""
    speakers, utterances, census, emb, emb_ids, snr, planted = make_world(n, seed, **kw)
    paths = {"utterances": folder / "utterances.csv", "speakers": folder / "speakers.csv",
             "census": folder / "census.csv", "embeddings": folder / "emb.npy", "embedding_ids": folder / "emb_ids.txt",
             "snr": folder / "snr.csv"}
    utterances.to_csv(paths["utterances"], index=False)
    speakers.to_csv(paths["speakers"], index=False)
    census.to_csv(paths["census"], index=False)
    np.save(paths["embeddings"], emb)
    paths["embedding_ids"].write_text("\n".join(emb_ids) + "\n")
    snr.to_csv(paths["snr"], index=False)
    return {**{k: str(v) for k, v in paths.items()}, "planted": planted}


def counts_args(paths: dict, *systems: str) -> list[str]:
    """CLI arguments reading the utterances as precomputed counts of ``systems`` (columns)."""
    out = [paths["utterances"], "--ref-words-col", "ref_words"]
    for s in systems or ("errors",):
        out += ["--errors-col", s]
    return out
