"""Simulated audits with a known truth: realistic worlds for every discoverer.

Each function builds one seeded world: a per-speaker table in the form every discoverer's
``fit`` takes (``speaker_id``, ``utterances``, ``ref_words``, ``substitutions``,
``deletions``, ``insertions``, ``errors``, ``wer`` and attribute columns), optionally the
utterance table, the side inputs it needs (census table, embeddings) and the ids of the
speakers given a planted disparity.  Tests use small replicates; ``benchmarks/
bench_discovery.py`` prints power, precision/recall, gaps and coverage from many.

The speakers look like real test sets (issue 15), not like a textbook:

* every speaker has their own error rate p ~ Beta(mean ``mean_wer``, concentration
  ``concentration``) (a ratio; concentration 20 gives a per-speaker WER spread of about
  +-6.5 points around 10 %): a cohort of unlucky speakers is always there to be found;
* a speaker has Poisson(8) + 1 utterances of 3-20 words (uniform), so speakers differ
  in how much they say (about 100 words on average);
* each word is an error with probability p (errors ~ Binomial(words, p) per utterance),
  split into substitutions / deletions / insertions in the ratio 0.6 / 0.25 / 0.15;
* the planted cohort (about 10 % of the speakers) has its rate multiplied by ``effect``
  (1.5 by default: a true relative gap of +50 % between the cohort and the rest, as
  E[effect x p] / E[p] - 1); with ``planted=False`` (the null world) nobody is, and
  ``World.candidates`` still names who would have been.

Worlds (all deterministic for a given ``seed``):

* :func:`geographic_world`: speakers around six US metros (New York, Los Angeles,
  Chicago, Houston, Atlanta, Denver; weighted by metro population), scattered N(0, 0.6 deg)
  in ground distance around the centre; planted: the speakers within 0.5 deg (great-circle)
  of one metro (New York by default, about 10 % of the speakers).
* :func:`geodemographic_world`: the same geography with zip codes (real 3-digit
  prefixes) and a synthetic census table (race/ethnicity shares, median income);
  planted: the speakers of majority-Black zips (``pct_black > 50%``, about 10 %).
* :func:`embedding_world`: 32-dimensional speaker embeddings in ten Gaussian blobs of
  unequal size; planted: one blob (about 10 %).
* :func:`attribute_world`: gender, age band and accent columns; planted: one accent
  (about 10 %), or an intersection (``planted_on="age_band=65+,gender=male"``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .discover.base import SideInputs

#: Six US metros: name, lat, lon (degrees), 3-digit zip prefix, population (millions, MSA 2020).
CITIES = (
    ("New York", 40.71, -74.01, "100", 19.8),
    ("Los Angeles", 34.05, -118.24, "900", 13.2),
    ("Chicago", 41.88, -87.63, "606", 9.5),
    ("Houston", 29.76, -95.37, "770", 7.1),
    ("Atlanta", 33.75, -84.39, "303", 6.1),
    ("Denver", 39.74, -104.99, "802", 2.9),
)
#: error-type split of every error (substitutions, deletions, insertions), ratios
ERROR_TYPES = (0.6, 0.25, 0.15)
#: mean utterances per speaker minus one (Poisson) and the words-per-utterance range
UTTERANCES_POISSON = 8
WORDS_RANGE = (3, 20)
EARTH_RADIUS_KM = 6371.0088


@dataclass
class World:
    """One simulated audit with a known truth.

    ``speakers``: per-speaker table (counts, ``wer`` ratio, attribute columns).
    ``utterances``: per-utterance table (``utt_id``, ``speaker_id``, ``ref_words``,
    ``errors``, ``substitutions``, ``deletions``, ``insertions``) or None.
    ``side``: side inputs (census, embeddings) for the discoverers that need them.
    ``planted``: ids of the speakers whose error rate was multiplied by ``effect``
    (sorted; empty in a null world).  ``candidates``: who the plant is or would be (the
    same set in the planted and null worlds of one seed), for diagnostics.
    ``truth``: ``planted_share_pct`` (% of speakers), ``true_gap_pct`` (the expected relative
    gap between planted speakers and the rest, %; 0 for a null world), ``effect`` (ratio),
    ``rule`` (text: who is planted) and world-specific extras.
    """

    kind: str
    speakers: pd.DataFrame
    utterances: pd.DataFrame | None
    side: SideInputs
    planted: np.ndarray
    candidates: np.ndarray
    truth: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


def _rng(seed: int, kind: str) -> np.random.Generator:
    # One stream per world kind: the geographic and geodemographic worlds of a seed differ.
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(sum(map(ord, kind)),)))


def speaker_rates(rng: np.random.Generator, n: int, mean_wer: float = 0.10, concentration: float = 20.0
                  ) -> np.ndarray:
    """Per-speaker error rates (ratio): Beta with mean ``mean_wer`` and ``concentration`` (a + b)."""
    if not 0 < mean_wer < 1 or concentration <= 0:
        raise ValueError("mean_wer must be in (0, 1) and concentration > 0")
    return rng.beta(mean_wer * concentration, (1.0 - mean_wer) * concentration, n)


def draw_counts(rng: np.random.Generator, ids: np.ndarray, rate: np.ndarray, with_utterances: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Utterances and per-speaker count table for speakers with error rates ``rate`` (ratio).

    Each speaker gets Poisson(8) + 1 utterances of 3-20 words; errors per utterance are
    Binomial(words, rate), split into S/D/I (0.6/0.25/0.15).  Vectorised over utterances.
    """
    n = len(ids)
    m = rng.poisson(UTTERANCES_POISSON, n) + 1
    spk = np.repeat(np.arange(n), m)
    words = rng.integers(WORDS_RANGE[0], WORDS_RANGE[1] + 1, len(spk))
    errors = rng.binomial(words, np.minimum(rate[spk], 1.0))
    # S/D/I split of every utterance's errors: sequential binomials = one multinomial.
    sub = rng.binomial(errors, ERROR_TYPES[0])
    dele = rng.binomial(errors - sub, ERROR_TYPES[1] / (1.0 - ERROR_TYPES[0]))
    ins = errors - sub - dele

    def per_speaker(x: np.ndarray) -> np.ndarray:
        return np.bincount(spk, weights=x, minlength=n).astype(np.int64)

    ref = per_speaker(words)
    err = per_speaker(errors)
    table = pd.DataFrame({"speaker_id": ids, "utterances": m.astype(np.int64), "ref_words": ref,
                          "substitutions": per_speaker(sub), "deletions": per_speaker(dele),
                          "insertions": per_speaker(ins), "errors": err, "wer": err / ref})
    utts = None
    if with_utterances:
        utts = pd.DataFrame({"utt_id": [f"u{i:07d}" for i in range(len(spk))], "speaker_id": ids[spk],
                             "ref_words": words.astype(np.int64), "errors": errors.astype(np.int64),
                             "substitutions": sub.astype(np.int64), "deletions": dele.astype(np.int64),
                             "insertions": ins.astype(np.int64)})
    return table, utts


def _finish(kind: str, rng: np.random.Generator, ids: np.ndarray, attrs: dict[str, Any], candidates: np.ndarray,
            planted: bool, effect: float, mean_wer: float, concentration: float, utterances: bool,
            side: SideInputs, seed: int, rule: str, **extra: Any) -> World:
    rate = speaker_rates(rng, len(ids), mean_wer, concentration)
    if planted:
        rate = np.where(candidates, rate * effect, rate)
    table, utts = draw_counts(rng, ids, rate, utterances)
    for k, v in attrs.items():
        table[k] = v
    cand_ids = np.sort(ids[candidates])
    truth = {"planted_share_pct": 100.0 * float(candidates.mean()) if planted else 0.0,
             "candidate_share_pct": 100.0 * float(candidates.mean()),
             "true_gap_pct": 100.0 * (effect - 1.0) if planted else 0.0, "effect": effect if planted else 1.0,
             "rule": rule, "mean_wer": mean_wer, "concentration": concentration, **extra}
    return World(kind=kind, speakers=table, utterances=utts, side=side,
                 planted=cand_ids if planted else np.zeros(0, dtype=object), candidates=cand_ids,
                 truth=truth, seed=int(seed))


def _ids(n: int) -> np.ndarray:
    return np.array([f"s{i:06d}" for i in range(n)], dtype=object)


def great_circle_deg(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance (degrees of arc) between points given in degrees (haversine)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _scatter(rng: np.random.Generator, n: int, scatter_deg: float, cities=CITIES
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """City index, lat, lon of ``n`` speakers: metros weighted by population, N(0, scatter) in
    ground distance (the longitude offset is stretched by 1/cos(lat))."""
    w = np.array([c[4] for c in cities], dtype=float)
    city = rng.choice(len(cities), size=n, p=w / w.sum())
    clat = np.array([c[1] for c in cities])[city]
    clon = np.array([c[2] for c in cities])[city]
    d = rng.normal(0.0, scatter_deg, size=(n, 2))
    lat = clat + d[:, 0]
    lon = clon + d[:, 1] / np.cos(np.radians(clat))
    return city, np.round(lat, 5), np.round(lon, 5)


def _city_index(name: str, cities=CITIES) -> int:
    names = [c[0] for c in cities]
    if name not in names:
        raise ValueError(f"unknown city {name!r}: choose from {', '.join(names)}")
    return names.index(name)


def geographic_world(n_speakers: int = 500, *, planted: bool = True, effect: float = 1.5, seed: int = 0,
                     planted_city: str = "New York", radius_deg: float = 0.5, scatter_deg: float = 0.6,
                     offset_deg: float = 0.0, mean_wer: float = 0.10, concentration: float = 20.0,
                     utterances: bool = False) -> World:
    """Speakers around six US metros; planted: those within ``radius_deg`` of ``planted_city``.

    ``n_speakers`` (count); ``effect`` (ratio: the planted speakers' error rate is
    multiplied by it); ``radius_deg``/``scatter_deg`` (degrees of great-circle arc: 0.5 deg
    is about 56 km); ``mean_wer`` (ratio) and ``concentration`` of the per-speaker Beta.
    With the default New York (34 % of the speakers) about 10 % are planted.
    ``offset_deg``: the planted disc's centre lies this far (degrees of arc) north-east of
    the city centre, off the densest point (a suburb; 0.6 deg plants about 5 %: a check
    that a method does not simply find the densest place).  Columns added: ``lat``,
    ``lon`` (degrees), ``city``.  ``truth["centre"]`` = [lat, lon] of the planted disc.
    """
    rng = _rng(seed, "geographic")
    c = _city_index(planted_city)
    city, lat, lon = _scatter(rng, n_speakers, scatter_deg)
    d = offset_deg / math.sqrt(2.0)
    centre = (CITIES[c][1] + d, CITIES[c][2] + d / math.cos(math.radians(CITIES[c][1])))
    cand = great_circle_deg(centre[0], centre[1], lat, lon) <= radius_deg
    names = np.array([x[0] for x in CITIES], dtype=object)[city]
    return _finish("geographic", rng, _ids(n_speakers), {"lat": lat, "lon": lon, "city": names}, cand, planted,
                   effect, mean_wer, concentration, utterances, SideInputs(), seed,
                   f"within {radius_deg:g} deg of {planted_city}", centre=list(centre), radius_deg=radius_deg)


def _census(rng: np.random.Generator, zips: list[str], majority_black: np.ndarray) -> pd.DataFrame:
    """Synthetic census rows: race/ethnicity shares (sum to 1) and median income (USD)."""
    k = len(zips)
    black = np.where(majority_black, rng.uniform(0.55, 0.92, k), rng.beta(1.2, 6.0, k) * 0.9)
    black = np.where(majority_black, black, np.minimum(black, 0.48))
    rest = rng.dirichlet([4.0, 1.5, 1.0], size=k) * (1.0 - black)[:, None]  # white, hispanic, asian
    income = np.round(np.exp(rng.normal(np.log(72_000), 0.35, k)) * np.where(majority_black, 0.8, 1.0), -2)
    return pd.DataFrame({"zip": zips, "pct_black": np.round(black, 4), "pct_white": np.round(rest[:, 0], 4),
                         "pct_hispanic": np.round(rest[:, 1], 4), "pct_asian": np.round(rest[:, 2], 4),
                         "median_income": income})


def geodemographic_world(n_speakers: int = 500, *, planted: bool = True, effect: float = 1.5, seed: int = 0,
                         speakers_per_zip: float = 3.0, majority_share: float = 0.10, scatter_deg: float = 0.6,
                         mean_wer: float = 0.10, concentration: float = 20.0, utterances: bool = False) -> World:
    """Speakers with zip codes and a census table; planted: speakers of majority-Black zips.

    About ``n_speakers / speakers_per_zip`` zips (real 3-digit prefixes of the six metros,
    synthetic last two digits) are drawn; ``majority_share`` (ratio) of the speakers live
    in zips with ``pct_black > 0.5`` (spread over every metro), the rest in zips below it.
    Census columns: ``pct_black``, ``pct_white``, ``pct_hispanic``, ``pct_asian`` (fractions)
    and ``median_income`` (USD, lower in majority-Black zips: a correlated attribute, so a
    conjunction can compete with the true rule).  ``side.census`` is the table (index
    ``zip``); speakers get ``zip``, ``lat``, ``lon``, ``city``.
    """
    rng = _rng(seed, "geodemographic")
    city, lat, lon = _scatter(rng, n_speakers, scatter_deg)
    n_zips = max(4, int(round(n_speakers / speakers_per_zip)))
    n_major = max(1, int(round(n_zips * majority_share)))
    zip_city = rng.choice(len(CITIES), n_zips)
    zip_city[:len(CITIES)] = np.arange(len(CITIES))  # every metro has a zip
    suffix = rng.permutation(100)
    zips, used = [], {}
    for z in range(n_zips):
        # up to 100 zips per prefix; beyond, the next prefix digit (still a valid zip form)
        pre = CITIES[zip_city[z]][3]
        k = used.get(pre, 0)
        used[pre] = k + 1
        zips.append(f"{pre}{suffix[k % 100]:02d}" if k < 100 else f"{int(pre) + k // 100:03d}{suffix[k % 100]:02d}")
    major = np.zeros(n_zips, dtype=bool)
    major[rng.choice(n_zips, n_major, replace=False)] = True
    census = _census(rng, zips, major)
    # Speakers pick a zip of their own metro; majority-Black zips get exactly their share.
    zip_of = np.empty(n_speakers, dtype=np.int64)
    want_major = rng.random(n_speakers) < majority_share
    for c in range(len(CITIES)):
        for flag in (True, False):
            who = np.flatnonzero((city == c) & (want_major == flag))
            pool = np.flatnonzero((zip_city == c) & (major == flag))
            if not len(pool):
                pool = np.flatnonzero(major == flag)
            zip_of[who] = rng.choice(pool, len(who)) if len(who) else zip_of[who]
    cand = major[zip_of]
    from .io.census import prepare_census

    side = SideInputs(census=prepare_census(census))
    names = np.array([x[0] for x in CITIES], dtype=object)[city]
    return _finish("geodemographic", rng, _ids(n_speakers),
                   {"lat": lat, "lon": lon, "city": names, "zip": np.array(zips, dtype=object)[zip_of]},
                   cand, planted, effect, mean_wer, concentration, utterances, side, seed, "pct_black > 50%",
                   zips=n_zips, majority_zips=n_major)


def embedding_world(n_speakers: int = 500, *, planted: bool = True, effect: float = 1.5, seed: int = 0,
                    dim: int = 32, blobs: int = 10, planted_share: float = 0.10, separation: float = 0.6,
                    mean_wer: float = 0.10, concentration: float = 20.0, utterances: bool = False) -> World:
    """Speaker embeddings in ``blobs`` Gaussian blobs in ``dim`` dimensions; planted: one blob.

    Blob centres ~ N(0, separation^2 I), speakers = centre + N(0, I) (so two centres are
    about ``separation x sqrt(2 dim)`` apart against a within-blob spread of sqrt(dim)).
    The planted blob holds ``planted_share`` (ratio) of the speakers; the others share the
    rest unequally (Dirichlet(3)).  ``side.embeddings`` (float32, one row per speaker) and
    ``side.embedding_ids``; speakers get a ``blob`` column (the truth, not for discovery).
    """
    rng = _rng(seed, "embedding")
    rest = rng.dirichlet(np.full(blobs - 1, 3.0)) * (1.0 - planted_share)
    p = np.concatenate([[planted_share], rest])
    blob = rng.choice(blobs, n_speakers, p=p)
    centres = rng.normal(0.0, separation, size=(blobs, dim))
    x = (centres[blob] + rng.normal(0.0, 1.0, size=(n_speakers, dim))).astype(np.float32)
    ids = _ids(n_speakers)
    side = SideInputs(embeddings=x, embedding_ids=ids.copy())
    return _finish("automatic", rng, ids, {"blob": blob}, blob == 0, planted, effect, mean_wer, concentration,
                   utterances, side, seed, "embedding blob 0", dim=dim, blobs=blobs)


#: attribute columns: value -> share (ratio) of the speakers
ATTRIBUTES = {
    "gender": {"female": 0.49, "male": 0.49, "nonbinary": 0.02},
    "age_band": {"18-29": 0.25, "30-44": 0.32, "45-64": 0.29, "65+": 0.14},
    "accent": {"us-general": 0.46, "us-southern": 0.16, "indian": 0.10, "british": 0.09, "african": 0.07,
               "hispanic": 0.07, "east-asian": 0.05},
}


def attribute_world(n_speakers: int = 500, *, planted: bool = True, effect: float = 1.5, seed: int = 0,
                    planted_on: str = "accent=indian", mean_wer: float = 0.10, concentration: float = 20.0,
                    utterances: bool = False) -> World:
    """Speakers with ``gender``, ``age_band`` and ``accent`` columns (independent draws).

    ``planted_on``: "column=value[,column=value]": the speakers matching every pair are
    planted (default ``accent=indian``, 10 %; ``age_band=65+,gender=male`` is a 7 %
    intersection).  The value shares are :data:`ATTRIBUTES`.
    """
    rng = _rng(seed, "attribute")
    attrs = {}
    for col, values in ATTRIBUTES.items():
        names = np.array(list(values), dtype=object)
        p = np.array(list(values.values()))
        attrs[col] = names[rng.choice(len(names), n_speakers, p=p / p.sum())]
    cand = np.ones(n_speakers, dtype=bool)
    for pair in planted_on.split(","):
        col, _, value = pair.partition("=")
        if col.strip() not in attrs or value.strip() not in ATTRIBUTES[col.strip()]:
            raise ValueError(f"planted_on: {pair!r} is not one of the attribute values {ATTRIBUTES}")
        cand &= attrs[col.strip()] == value.strip()
    return _finish("attribute", rng, _ids(n_speakers), attrs, cand, planted, effect, mean_wer, concentration,
                   utterances, SideInputs(), seed, planted_on.replace(",", " AND "))


#: world builder per discoverer name (the metadata discoverer uses the attribute world)
WORLDS: dict[str, Callable[..., World]] = {
    "geographic": geographic_world,
    "geodemographic": geodemographic_world,
    "automatic": embedding_world,
    "attribute": attribute_world,
    "metadata": attribute_world,
}


def world(kind: str, **kwargs: Any) -> World:
    """The world for discoverer ``kind`` (a key of :data:`WORLDS`), built with ``kwargs``."""
    if kind not in WORLDS:
        raise ValueError(f"no simulated world for {kind!r}: choose from {', '.join(WORLDS)}")
    return WORLDS[kind](**kwargs)


def precision_recall(members: Any, planted: Any) -> tuple[float, float]:
    """(precision, recall) of a found cohort's speaker ids against the planted ids (ratios).

    Precision = |found and planted| / |found| (0 when nothing is found); recall =
    |found and planted| / |planted| (NaN when nothing was planted).
    """
    found, truth = set(map(str, members)), set(map(str, planted))
    hit = len(found & truth)
    return (hit / len(found) if found else 0.0), (hit / len(truth) if truth else float("nan"))
