#!/usr/bin/env python
"""Generate fairaudit's synthetic sample data set (deterministic for a given seed).

    python sample_data/generate.py                 # regenerate sample_data/ (seed 20221)
    python sample_data/generate.py --seed 7 --out /tmp/sd

Writes utterances.csv, speakers.csv, census.csv, embeddings.npy, embedding_ids.txt and
planted.json (see README.md in this folder).  City coordinates and 3-digit zip prefixes
are real places; every speaker, transcript, census share, income and embedding is
synthetic.  Only numpy (random numbers) and pandas (CSV writing) are used.

Three disparities are planted, one per discoverer, on disjoint groups of speakers; each
multiplies the speaker's per-word error probability:

* geographic: every speaker around Atlanta, GA                 -> x 2.2
* geodemographic: speakers in majority-Black zips (pct_black > 0.5),
  spread over sixteen other cities                                -> x 1.8
* automatic: speakers of one embedding blob                      -> x 2.0

Everything else (gender, age band, other cities and zips, other blobs) has no effect.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SEED = 20221
DEFAULT_OUT = Path(__file__).resolve().parent

N_SPEAKERS = 500
EMBED_DIM = 64
N_BLOBS = 8

BASE_P_MEDIAN = 0.08      # median per-word error probability of a speaker
BASE_P_SIGMA = 0.35       # lognormal spread of that probability across speakers
BASE_P_CLIP = (0.01, 0.30)
MAX_P = 0.75

GEO_METRO = "Atlanta"
GEO_N = 46                # speakers around the metro (9.2 %)
GEO_MULT = 2.2
GEODEMO_N = 46            # speakers in majority-Black zips (9.2 %)
GEODEMO_MULT = 1.8
AUTO_BLOB = 5
AUTO_N = 50               # speakers in the planted embedding blob (10 %)
AUTO_MULT = 2.0
TWO_LOBED_BLOBS = (1, 6)  # non-planted blobs with two sub-modes
JITTER_SD, JITTER_MAX = 0.15, 0.30   # degrees, around the city centre

N_MISSING_LATLON = 5
N_ZERO_LATLON = 2
N_ZIP_NOT_IN_CENSUS = 8
N_EXTRA_CENSUS_ZIPS = 80

# name, state, lat, lon, real 3-digit zip prefix, weight (speakers), majority-Black zips
CITIES = [
    ("Boston", "MA", 42.36, -71.06, "021", 1.4, False),
    ("Providence", "RI", 41.82, -71.41, "029", 0.6, False),
    ("Hartford", "CT", 41.76, -72.69, "061", 0.6, False),
    ("New York", "NY", 40.71, -74.01, "100", 2.6, False),
    ("Newark", "NJ", 40.74, -74.17, "071", 0.8, True),
    ("Philadelphia", "PA", 39.95, -75.17, "191", 1.5, True),
    ("Pittsburgh", "PA", 40.44, -79.99, "152", 0.8, False),
    ("Baltimore", "MD", 39.29, -76.61, "212", 1.2, True),
    ("Washington", "DC", 38.91, -77.04, "200", 1.3, True),
    ("Richmond", "VA", 37.54, -77.44, "232", 0.7, True),
    ("Charlotte", "NC", 35.23, -80.84, "282", 1.0, True),
    ("Raleigh", "NC", 35.78, -78.64, "276", 0.8, False),
    ("Atlanta", "GA", 33.75, -84.39, "303", 0.0, False),   # size fixed by GEO_N
    ("Birmingham", "AL", 33.52, -86.80, "352", 1.0, True),
    ("Jacksonville", "FL", 30.33, -81.66, "322", 1.0, True),
    ("Orlando", "FL", 28.54, -81.38, "328", 0.9, False),
    ("Tampa", "FL", 27.95, -82.46, "336", 0.9, False),
    ("Miami", "FL", 25.76, -80.19, "331", 1.3, False),
    ("Nashville", "TN", 36.16, -86.78, "372", 0.9, False),
    ("Memphis", "TN", 35.15, -90.05, "381", 1.1, True),
    ("New Orleans", "LA", 29.95, -90.07, "701", 1.1, True),
    ("Detroit", "MI", 42.33, -83.05, "482", 1.3, True),
    ("Cleveland", "OH", 41.50, -81.69, "441", 1.0, True),
    ("Columbus", "OH", 39.96, -83.00, "432", 0.9, False),
    ("Cincinnati", "OH", 39.10, -84.51, "452", 0.8, False),
    ("Indianapolis", "IN", 39.77, -86.16, "462", 0.9, False),
    ("Chicago", "IL", 41.88, -87.63, "606", 2.0, True),
    ("Milwaukee", "WI", 43.04, -87.91, "532", 0.8, True),
    ("Minneapolis", "MN", 44.98, -93.27, "554", 1.0, False),
    ("St. Louis", "MO", 38.63, -90.20, "631", 1.0, True),
    ("Kansas City", "MO", 39.10, -94.58, "641", 0.8, False),
    ("Oklahoma City", "OK", 35.47, -97.52, "731", 0.7, False),
    ("Dallas", "TX", 32.78, -96.80, "752", 1.5, False),
    ("Houston", "TX", 29.76, -95.37, "770", 1.8, True),
    ("Austin", "TX", 30.27, -97.74, "787", 1.0, False),
    ("San Antonio", "TX", 29.42, -98.49, "782", 1.0, False),
    ("Denver", "CO", 39.74, -104.99, "802", 1.0, False),
    ("Albuquerque", "NM", 35.08, -106.65, "871", 0.6, False),
    ("Phoenix", "AZ", 33.45, -112.07, "850", 1.3, False),
    ("Salt Lake City", "UT", 40.76, -111.89, "841", 0.7, False),
    ("Las Vegas", "NV", 36.17, -115.14, "891", 0.8, False),
    ("Los Angeles", "CA", 34.05, -118.24, "900", 2.3, False),
    ("San Diego", "CA", 32.72, -117.16, "921", 1.0, False),
    ("San Francisco", "CA", 37.77, -122.42, "941", 1.2, False),
    ("Sacramento", "CA", 38.58, -121.49, "958", 0.7, False),
    ("Portland", "OR", 45.52, -122.68, "972", 0.9, False),
    ("Seattle", "WA", 47.61, -122.33, "981", 1.3, False),
]
# Cities where a good share of zips is majority-Hispanic (synthetic, loosely realistic).
HISPANIC_CITIES = {"Miami", "San Antonio", "Los Angeles", "Houston", "Phoenix",
                   "Albuquerque", "San Diego", "Las Vegas", "Dallas", "Austin"}

GENDERS = ["female", "male", "nonbinary"]
GENDER_P = [0.49, 0.49, 0.02]
AGE_BANDS = ["18-29", "30-44", "45-64", "65+"]
AGE_P = [0.25, 0.32, 0.29, 0.14]

# ---------------------------------------------------------------------------------------
# Voice-assistant requests: templates (canonical casing, no terminal punctuation) and the
# slot fillers.  The trailing flag marks questions (they get "?" when punctuated).
TEMPLATES = [
    ("set a timer for {duration}", False),
    ("set a {duration} timer", False),
    ("start a timer for {duration}", False),
    ("how much time is left on my timer", True),
    ("wake me up at {clock} {day}", False),
    ("set an alarm for {clock} {day}", False),
    ("cancel my {clock} alarm", False),
    ("what's the weather in {city} {day}", True),
    ("what's the weather like {day}", True),
    ("will it rain in {city} {day}", True),
    ("is it going to snow {day}", True),
    ("what's the temperature outside", True),
    ("do I need an umbrella {day}", True),
    ("play some {genre} in the {room}", False),
    ("play {genre} music", False),
    ("play the latest album by {artist}", False),
    ("play {artist} on {service}", False),
    ("shuffle my {playlist} playlist", False),
    ("turn the volume {updown}", False),
    ("okay, play some {genre}", False),
    ("skip this song", False),
    ("pause the music", False),
    ("what song is this", True),
    ("call {contact}", False),
    ("call {contact} on speaker", False),
    ("text {contact} that I'm running late", False),
    ("send a message to {contact} saying {message}", False),
    ("add {item} to my shopping list", False),
    ("put {item} on the grocery list", False),
    ("remove {item} from my list", False),
    ("order more {item}", False),
    ("what's on my shopping list", True),
    ("turn {onoff} the {room} lights", False),
    ("dim the lights in the {room} to {number} percent", False),
    ("set the thermostat to {temperature} degrees", False),
    ("lock the front door", False),
    ("is the garage door closed", True),
    ("remind me to {task} {when}", False),
    ("remind me {when} to {task}", False),
    ("what's on my calendar {day}", True),
    ("how far is {place} from here", True),
    ("how long will it take to get to {place}", True),
    ("navigate to {place}", False),
    ("find a {food} restaurant near me", False),
    ("what time is it in {city}", True),
    ("how do you spell {word}", True),
    ("what's {math}", True),
    ("who won the {team} game last night", True),
    ("tell me a joke", False),
    ("read me the news", False),
    ("no, cancel that", False),
    ("hey, what time is it", True),
    ("stop", False),
    ("thank you", False),
]
SLOTS = {
    "duration": ["five minutes", "ten minutes", "fifteen minutes", "twenty minutes",
                 "thirty seconds", "one hour", "two hours", "forty-five minutes",
                 "twenty-five minutes", "an hour and a half", "three minutes", "ninety seconds"],
    "clock": ["six thirty", "seven o'clock", "five forty-five", "noon", "seven fifteen",
              "nine", "eight thirty", "six", "ten o'clock", "four twenty"],
    "day": ["tomorrow", "today", "tonight", "on Monday", "on Saturday", "this weekend",
            "every weekday", "on Friday"],
    "city": ["Boston", "Seattle", "Chicago", "Denver", "Austin", "Miami", "Phoenix",
             "New York", "San Francisco", "Atlanta", "Portland", "Dallas", "New Orleans",
             "Detroit", "Memphis", "London", "Tokyo", "Mexico City"],
    "genre": ["jazz", "classical music", "country", "hip hop", "rock", "reggae", "blues",
              "gospel", "salsa", "lo-fi beats", "nineties pop", "R&B", "bluegrass"],
    "room": ["kitchen", "living room", "bedroom", "office", "dining room", "garage",
             "basement", "bathroom", "kids' room"],
    "artist": ["Taylor Swift", "Miles Davis", "Beyoncé", "Bad Bunny", "Stevie Wonder",
               "Dolly Parton", "Kendrick Lamar", "the Beatles", "Aretha Franklin",
               "Johnny Cash", "Ella Fitzgerald", "Drake"],
    "service": ["Spotify", "Pandora", "the radio"],
    "playlist": ["workout", "dinner party", "chill", "road trip", "Sunday morning", "focus"],
    "updown": ["up", "down", "up a little", "down a lot", "to five", "to eight"],
    "contact": ["Mom", "Dad", "my sister", "Grandma", "Dr. Patel", "Aunt Linda", "Jessica",
                "Mike", "the office", "Carlos", "Keisha", "Nguyen", "my brother", "Tyrone",
                "Maria", "Uncle Joe"],
    "message": ["I'm on my way", "dinner is ready", "call me back", "happy birthday",
                "I'll be home soon", "don't forget the keys", "see you at six"],
    "item": ["eggs", "milk", "bread", "paper towels", "bananas", "peanut butter", "dish soap",
             "coffee", "orange juice", "rice", "chicken thighs", "tortillas", "Greek yogurt",
             "apples", "black beans", "collard greens", "toilet paper"],
    "onoff": ["on", "off"],
    "number": ["twenty", "thirty", "fifty", "seventy-five", "ten"],
    "temperature": ["sixty-eight", "seventy", "seventy-two", "sixty-five", "seventy-four"],
    "task": ["call the dentist", "take out the trash", "pick up the kids", "pay the electric bill",
             "water the plants", "take my medicine", "move the car", "buy a birthday card",
             "check the mail", "feed the dog"],
    "when": ["at five", "tomorrow morning", "in an hour", "tonight", "on Friday", "at noon",
             "in twenty minutes", "this evening"],
    "place": ["the airport", "the nearest gas station", "Walmart", "the library", "work",
              "home", "Central Park", "the hospital", "Grandma's house", "the stadium"],
    "food": ["Thai", "Mexican", "pizza", "sushi", "soul food", "Ethiopian", "barbecue",
             "vegan", "Cajun", "Vietnamese"],
    "word": ["necessary", "rhythm", "Mississippi", "restaurant", "separate", "Wednesday"],
    "math": ["twelve times fifteen", "a hundred divided by eight", "twenty percent of eighty",
             "seven plus nine", "the square root of sixty-four"],
    "team": ["Lakers", "Cowboys", "Red Sox", "Bulls", "Saints", "Braves", "Knicks", "Seahawks"],
}
# Plausible ASR confusions (lower-case reference word -> candidates).
CONFUSIONS = {
    "timer": ["time", "timers"], "ten": ["then", "tin"], "weather": ["whether", "feather"],
    "boston": ["austin"], "austin": ["boston"], "jazz": ["jas", "chaz"], "mom": ["mum", "mon"],
    "eggs": ["legs", "ex"], "list": ["lists", "lisp"], "lights": ["light", "likes"],
    "kitchen": ["chicken"], "play": ["pay", "played"], "four": ["for"], "for": ["four", "far"],
    "to": ["two", "too"], "two": ["to", "too"], "set": ["sit", "said"], "call": ["cole", "cold"],
    "text": ["next", "tex"], "alarm": ["alarms", "llama"], "minutes": ["minute", "minutes's"],
    "off": ["of"], "on": ["in", "an"], "in": ["and", "on"], "the": ["a", "that"], "a": ["the", "uh"],
    "tomorrow": ["tomorrows", "morrow"], "what's": ["what", "what is"], "fifteen": ["fifty"],
    "thirty": ["thirteen", "dirty"], "seventy": ["seventeen"], "sixty": ["sixteen"],
    "bedroom": ["bathroom"], "bathroom": ["bedroom"], "living": ["leaving"], "remind": ["rewind"],
    "music": ["musics"], "seattle": ["settle"], "milk": ["mill", "milked"], "bread": ["bed", "red"],
    "add": ["at", "had"], "shopping": ["chopping"], "volume": ["value"], "down": ["town"],
    "news": ["nose"], "denver": ["dinner"], "dad": ["dead", "dan"], "rain": ["ring", "rein"],
    "song": ["son", "long"], "keisha": ["kisha", "kesha"], "nguyen": ["win", "when"],
    "tyrone": ["tyron"], "patel": ["patil", "petal"], "beyoncé": ["beyonce"], "memphis": ["memphys"],
    "collard": ["collar"], "greens": ["grins"], "thermostat": ["thermos"], "degrees": ["decrees"],
    "garage": ["garbage"], "trash": ["trush"], "dentist": ["dentists"], "dim": ["them", "dem"],
    "cajun": ["cage in"], "salsa": ["salts"], "umbrella": ["umbrellas"], "tortillas": ["tortilla"],
    "it's": ["its"], "i'm": ["i", "am"], "i'll": ["i"], "don't": ["do"],
}
FILLERS = ["the", "a", "uh", "um", "and", "to", "it", "is", "on", "you", "i", "oh"]
EMPTY_REF_HYP = "hmm okay"

_SPLIT_PUNCT = re.compile(r"^(.*?)([.,?!]*)$")


# ---------------------------------------------------------------------------------------
def _choice(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _allocate(total, weights):
    """Largest-remainder rounding of total * weights / sum(weights) (deterministic)."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    rem = total - out.sum()
    order = np.argsort(-(raw - out), kind="stable")
    out[order[:rem]] += 1
    return out


def _vocabulary():
    words = set()
    for text, _ in TEMPLATES:
        words.update(re.sub(r"\{\w+\}", " ", text).split())
    for fillers in SLOTS.values():
        for f in fillers:
            words.update(f.split())
    words = {w.strip(",.?!").lower() for w in words}
    return sorted(w for w in words if w and "-" not in w)


def _render_reference(rng):
    template, question = _choice(rng, TEMPLATES)
    text = re.sub(r"\{(\w+)\}", lambda m: _choice(rng, SLOTS[m.group(1)]), template)
    u = rng.random()
    if u < 0.45:      # Sentence case with terminal punctuation
        return text[0].upper() + text[1:] + ("?" if question else ".")
    if u < 0.70:      # Sentence case, no terminal punctuation
        return text[0].upper() + text[1:]
    if u < 0.90:      # as spoken, proper nouns capitalised
        return text
    return text.lower()  # all lower case


def _corrupt(reference, p, rng, vocab):
    """Word errors: each token has an error with probability p (sub/del/ins = 50/25/25)."""
    out = []
    for tok in reference.split(" "):
        core, punct = _SPLIT_PUNCT.match(tok).groups()
        if rng.random() >= p or not core:
            out.append(tok)
            continue
        u = rng.random()
        if u < 0.50:  # substitution
            low = core.lower()
            cands = CONFUSIONS.get(low)
            if cands and rng.random() < 0.7:
                new = _choice(rng, cands)
            else:
                new = low
                while new == low:
                    new = _choice(rng, vocab)
            if core[0].isupper():
                new = new[0].upper() + new[1:]
            out.append(new + punct)
        elif u < 0.75:  # deletion
            continue
        else:  # insertion, before or after the word
            extra = _choice(rng, FILLERS) if rng.random() < 0.5 else _choice(rng, vocab)
            out.extend([extra, tok] if rng.random() < 0.5 else [tok, extra])
    return " ".join(out)


def _hypothesis_style(hyp, rng):
    """Casing/punctuation changes that the default normaliser removes."""
    u = rng.random()
    if u < 0.45:  # raw ASR style: lower case, no punctuation, hyphens as spaces
        hyp = re.sub(r"[.,?!]", "", hyp.lower()).replace("-", " ")
        return re.sub(r" +", " ", hyp).strip()
    if u < 0.85 or not hyp:  # same style as the reference
        return hyp
    # toggled: flip case of the first letter and the terminal punctuation
    first = hyp[0].lower() if hyp[0].isupper() else hyp[0].upper()
    hyp = first + hyp[1:]
    return hyp[:-1] if hyp[-1] in ".?!" else hyp + "."


# ---------------------------------------------------------------------------------------
def _make_speakers(rng):
    n = N_SPEAKERS
    names = [c[0] for c in CITIES]
    atl = names.index(GEO_METRO)
    others = [i for i in range(len(CITIES)) if i != atl]
    n_other = n - GEO_N
    min_per_city = 4
    counts = np.zeros(len(CITIES), dtype=int)
    counts[atl] = GEO_N
    w = np.array([CITIES[i][5] for i in others])
    counts[others] = min_per_city + rng.multinomial(n_other - min_per_city * len(others), w / w.sum())

    designated = [i for i in others if CITIES[i][6]]
    n_black = np.zeros(len(CITIES), dtype=int)
    n_black[designated] = _allocate(GEODEMO_N, counts[designated])

    # One record per speaker, built city by city, then shuffled before ids are given.
    city_of, black = [], []
    for i in range(len(CITIES)):
        city_of += [i] * counts[i]
        black += [True] * n_black[i] + [False] * (counts[i] - n_black[i])
    city_of, black = np.array(city_of), np.array(black)
    perm = rng.permutation(n)
    city_of, black = city_of[perm], black[perm]
    ids = np.array([f"spk{k:04d}" for k in range(n)])

    group = np.full(n, "rest", dtype=object)
    group[city_of == atl] = "geographic"
    group[black] = "geodemographic"
    rest_idx = np.flatnonzero(group == "rest")
    auto_idx = np.sort(rng.choice(rest_idx, AUTO_N, replace=False))
    group[auto_idx] = "automatic"

    # Blobs: the planted blob holds exactly the automatic group; others spread uniformly.
    other_blobs = [b for b in range(N_BLOBS) if b != AUTO_BLOB]
    blob = np.array([_choice(rng, other_blobs) for _ in range(n)])
    blob[auto_idx] = AUTO_BLOB

    # Coordinates: jitter around the city centre.
    jit = np.clip(rng.normal(0.0, JITTER_SD, size=(n, 2)), -JITTER_MAX, JITTER_MAX)
    lat = np.array([CITIES[c][2] for c in city_of]) + jit[:, 0]
    lon = np.array([CITIES[c][3] for c in city_of]) + jit[:, 1]
    lat, lon = np.round(lat, 4), np.round(lon, 4)

    gender = np.array([GENDERS[g] for g in rng.choice(len(GENDERS), n, p=GENDER_P)])
    age = np.array([AGE_BANDS[a] for a in rng.choice(len(AGE_BANDS), n, p=AGE_P)])

    # Error probability: independent of every attribute except the planted groups.
    base_p = np.clip(BASE_P_MEDIAN * np.exp(rng.normal(0, BASE_P_SIGMA, n)), *BASE_P_CLIP)
    mult = np.ones(n)
    mult[group == "geographic"] = GEO_MULT
    mult[group == "geodemographic"] = GEODEMO_MULT
    mult[group == "automatic"] = AUTO_MULT
    p = np.minimum(base_p * mult, MAX_P)

    # "Not audited" speakers come from the rest group only (planted groups stay auditable).
    rest_idx = np.flatnonzero(group == "rest")
    special = rng.choice(rest_idx, N_MISSING_LATLON + N_ZERO_LATLON + N_ZIP_NOT_IN_CENSUS,
                         replace=False)
    missing = np.sort(special[:N_MISSING_LATLON])
    zero = np.sort(special[N_MISSING_LATLON:N_MISSING_LATLON + N_ZERO_LATLON])
    nozip = np.sort(special[N_MISSING_LATLON + N_ZERO_LATLON:])
    lat[missing] = np.nan
    lon[missing] = np.nan
    lat[zero] = 0.0
    lon[zero] = 0.0

    return dict(ids=ids, city_of=city_of, black=black, group=group, blob=blob, lat=lat,
                lon=lon, gender=gender, age=age, base_p=base_p, p=p, missing=missing,
                zero=zero, nozip=nozip, counts=counts)


def _shares(rng, profile):
    """pct_white, pct_black, pct_hispanic, pct_asian (floored to 3 decimals, sum <= 1)."""
    if profile == "black":
        b = rng.uniform(0.55, 0.88)
        rest = rng.dirichlet([4.0, 2.0, 1.0, 0.6]) * (1 - b)
        s = np.array([rest[0], b, rest[1], rest[2]])
    else:
        alpha = {"white": [8.0, 1.2, 1.5, 0.7, 0.4],
                 "hispanic": [2.0, 0.8, 7.0, 0.5, 0.3],
                 "mixed": [3.0, 1.5, 2.5, 1.2, 0.4]}[profile]
        while True:
            d = rng.dirichlet(alpha)
            if d[1] <= 0.38:  # well below a majority
                break
        s = d[:4]
    return np.floor(s * 1000) / 1000


def _make_zips_and_census(rng, spk):
    n = N_SPEAKERS
    zips = np.empty(n, dtype=object)
    census_rows = []
    used = set()

    def new_zip(prefix):
        while True:
            z = prefix + f"{int(rng.integers(100)):02d}"
            if z not in used:
                used.add(z)
                return z

    def profile_for(city):
        u = rng.random()
        if city in HISPANIC_CITIES:
            return "hispanic" if u < 0.5 else ("mixed" if u < 0.75 else "white")
        return "white" if u < 0.7 else "mixed"

    def income():
        return int(round(np.clip(65000 * np.exp(rng.normal(0, 0.4)), 25000, 180000), -2))

    black_zips = []
    for c, (name, _st, _la, _lo, prefix, _w, _d) in enumerate(CITIES):
        members = np.flatnonzero(spk["city_of"] == c)
        regular = [i for i in members if not spk["black"][i]]
        blackm = [i for i in members if spk["black"][i]]
        pool = [new_zip(prefix) for _ in range(int(np.clip(round(len(regular) / 4), 2, 8)))]
        for z in pool:
            census_rows.append((z, _shares(rng, profile_for(name)), income()))
        for i in regular:
            zips[i] = _choice(rng, pool)
        if blackm:
            bpool = [new_zip(prefix) for _ in range(1 if len(blackm) <= 4 else 2)]
            for z in bpool:
                census_rows.append((z, _shares(rng, "black"), income()))
                black_zips.append(z)
            for k, i in enumerate(blackm):  # every majority-Black zip gets a speaker
                zips[i] = bpool[k] if k < len(bpool) else _choice(rng, bpool)
    # Zips that exist for a speaker but not in the census table.
    for i in spk["nozip"]:
        zips[i] = new_zip(CITIES[spk["city_of"][i]][4])
    # Extra census rows nobody lives in (a few of them majority-Black).
    for _ in range(N_EXTRA_CENSUS_ZIPS):
        name, prefix = _choice(rng, [(c[0], c[4]) for c in CITIES])
        prof = "black" if rng.random() < 0.08 else profile_for(name)
        census_rows.append((new_zip(prefix), _shares(rng, prof), income()))

    census = pd.DataFrame({
        "zip": [r[0] for r in census_rows],
        "pct_white": [r[1][0] for r in census_rows],
        "pct_black": [r[1][1] for r in census_rows],
        "pct_hispanic": [r[1][2] for r in census_rows],
        "pct_asian": [r[1][3] for r in census_rows],
        "median_income": np.array([r[2] for r in census_rows], dtype=np.int64),
    }).sort_values("zip", kind="stable").reset_index(drop=True)
    return zips, census, sorted(black_zips)


def _make_embeddings(rng, spk):
    n, d = N_SPEAKERS, EMBED_DIM
    offset = rng.normal(size=d)
    offset *= 0.8 / np.linalg.norm(offset)          # embeddings are not zero-mean
    centers = rng.normal(size=(N_BLOBS, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    spread = rng.uniform(0.50, 0.65, size=N_BLOBS)  # radius of each blob (norm)
    spread[AUTO_BLOB] = 0.45
    nuisance = rng.normal(size=(4, d))              # channel/session directions
    nuisance /= np.linalg.norm(nuisance, axis=1, keepdims=True)
    # Two of the other blobs are two-lobed (e.g. two recording set-ups), so the data have
    # ten natural clusters: k-means with k=10 splits those and keeps the planted blob whole.
    b = spk["blob"]
    x = offset + centers[b]
    lobe_dir = rng.normal(size=(N_BLOBS, d))
    lobe_dir /= np.linalg.norm(lobe_dir, axis=1, keepdims=True)
    for blob in TWO_LOBED_BLOBS:
        members = np.flatnonzero(b == blob)
        sign = np.where(np.arange(len(members)) % 2 == 0, 1.0, -1.0)[rng.permutation(len(members))]
        x[members] += 0.35 * sign[:, None] * lobe_dir[blob]
    x += rng.normal(size=(n, d)) * (spread[b] / np.sqrt(d))[:, None]
    x += rng.normal(0, 0.15, size=(n, 4)) @ nuisance
    x += rng.normal(0, 0.02, size=(n, d))
    return x.astype(np.float32)


def _make_utterances(rng, spk):
    vocab = _vocabulary()
    n = N_SPEAKERS
    n_utts = np.clip(np.round(np.exp(rng.normal(np.log(11.0), 0.45, n))), 4, 25).astype(int)
    records = []
    for i in range(n):
        for _ in range(n_utts[i]):
            ref = _render_reference(rng)
            hyp = _hypothesis_style(_corrupt(ref, spk["p"][i], rng, vocab), rng)
            records.append([spk["ids"][i], ref, hyp])
    order = rng.permutation(len(records))
    records = [records[k] for k in order]
    for k, r in enumerate(records):
        r.insert(0, f"u{k:06d}")

    # Deliberately bad rows, all on rows of "rest" speakers with a normal history.
    rest = set(spk["ids"][spk["group"] == "rest"])
    candidates = [k for k, r in enumerate(records) if r[1] in rest]
    picks = rng.choice(candidates, 5, replace=False)
    empty_ref, no_speaker = sorted(picks[:3].tolist()), sorted(picks[3:].tolist())
    for j, k in enumerate(empty_ref):
        records[k][2] = ""
        records[k][3] = EMPTY_REF_HYP if j == 0 else ""
    for k in no_speaker:
        records[k][1] = ""
    bad = set(empty_ref) | set(no_speaker)
    # Duplicated utt_ids: an exact copy of an earlier row, and a different utterance that
    # reuses an earlier row's id.  Both are inserted at least 1,000 rows after the original.
    n0 = len(records)
    ok = [k for k in candidates if k not in bad and k < n0 - 2000]
    src = sorted(rng.choice(ok, 2, replace=False).tolist())
    exact = list(records[src[0]])
    other = _choice(rng, sorted(rest - {records[src[1]][1]}))
    p_other = float(spk["p"][int(np.flatnonzero(spk["ids"] == other)[0])])
    ref = _render_reference(rng)
    conflicting = [records[src[1]][0], other, ref,
                   _hypothesis_style(_corrupt(ref, p_other, rng, vocab), rng)]
    at = [int(k + rng.integers(1000, 2000)) for k in src]
    # insert at the later position first so the earlier position stays valid
    for pos, row in sorted(zip(at, [exact, conflicting]), key=lambda t: -t[0]):
        records.insert(pos + 1, row)
    frame = pd.DataFrame(records, columns=["utt_id", "speaker_id", "reference", "hypothesis"])
    bad_info = {
        "empty_reference": frame.loc[frame["reference"] == "", "utt_id"].tolist(),
        "empty_reference_nonempty_hypothesis":
            frame.loc[(frame["reference"] == "") & (frame["hypothesis"] != ""), "utt_id"].tolist(),
        "missing_speaker_id": frame.loc[frame["speaker_id"] == "", "utt_id"].tolist(),
        "duplicate_utt_id_exact_copy": exact[0],
        "duplicate_utt_id_different_utterance": conflicting[0],
    }
    return frame, bad_info


# ---------------------------------------------------------------------------------------
def main(out_dir: str | Path = DEFAULT_OUT, seed: int = DEFAULT_SEED) -> dict:
    """Generate every sample file into ``out_dir``; returns the planted ground truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    spk = _make_speakers(rng)
    zips, census, black_zips = _make_zips_and_census(rng, spk)
    emb = _make_embeddings(rng, spk)
    utts, bad_info = _make_utterances(rng, spk)

    speakers = pd.DataFrame({
        "speaker_id": spk["ids"], "lat": spk["lat"], "lon": spk["lon"], "zip": zips,
        "gender": spk["gender"], "age_band": spk["age"],
    })
    # Self-checks of the planted structure.
    in_census = set(census["zip"])
    assert all(len(z) == 5 and z.isdigit() for z in list(zips) + list(in_census))
    assert sum(z not in in_census for z in zips) == N_ZIP_NOT_IN_CENSUS
    pct_black = speakers["zip"].map(census.set_index("zip")["pct_black"])
    assert ((pct_black > 0.5).to_numpy() == spk["black"]).all()
    assert not set(utts["reference"]) & {"NA", "N/A", "null", "None", "nan", "NaN"}

    atl = [c for c in CITIES if c[0] == GEO_METRO][0]
    bbox = {"lat_min": round(atl[2] - JITTER_MAX, 4), "lat_max": round(atl[2] + JITTER_MAX, 4),
            "lon_min": round(atl[3] - JITTER_MAX, 4), "lon_max": round(atl[3] + JITTER_MAX, 4)}
    inside = ((speakers["lat"] >= bbox["lat_min"]) & (speakers["lat"] <= bbox["lat_max"])
              & (speakers["lon"] >= bbox["lon_min"]) & (speakers["lon"] <= bbox["lon_max"]))
    assert (inside.to_numpy() == (spk["group"] == "geographic")).all()

    def ids_of(g):
        return sorted(spk["ids"][spk["group"] == g].tolist())

    def mean_p(mask):
        return round(float(spk["p"][mask].mean()), 4)

    planted = {
        "seed": seed,
        "n_speakers": N_SPEAKERS,
        "error_model": {
            "description": "each reference word independently gets an error with the speaker's "
                           "probability p (substitution/deletion/insertion = 50/25/25 %); "
                           "base p = clip(0.08 * exp(N(0, 0.35)), 0.01, 0.30), times the "
                           "multiplier of the speaker's planted group, capped at 0.75",
            "mean_p": {g: mean_p(spk["group"] == g)
                       for g in ("geographic", "geodemographic", "automatic", "rest")},
        },
        "geographic": {
            "description": f"all speakers around {atl[0]}, {atl[1]} (within +/-{JITTER_MAX} deg "
                         "of the city centre) have their error probability multiplied",
            "multiplier": GEO_MULT,
            "metro": f"{atl[0]}, {atl[1]}",
            "bbox": bbox,
            "n_speakers": len(ids_of("geographic")),
            "speaker_ids": ids_of("geographic"),
        },
        "geodemographic": {
            "description": "speakers whose zip is majority-Black in census.csv (spread over "
                           f"{sum(1 for c in CITIES if c[6])} cities, none of them {atl[0]}) "
                           "have their error probability multiplied",
            "multiplier": GEODEMO_MULT,
            "rule": "pct_black > 0.5",
            "zips": black_zips,
            "n_speakers": len(ids_of("geodemographic")),
            "speaker_ids": ids_of("geodemographic"),
        },
        "automatic": {
            "description": f"speakers of embedding blob {AUTO_BLOB} (of {N_BLOBS} gaussian blobs; "
                           "blob membership independent of place and census) have their error "
                           "probability multiplied",
            "multiplier": AUTO_MULT,
            "blob": AUTO_BLOB,
            "n_blobs": N_BLOBS,
            "n_speakers": len(ids_of("automatic")),
            "speaker_ids": ids_of("automatic"),
        },
        "groups_disjoint": True,
        "not_audited": {
            "missing_latlon": sorted(spk["ids"][spk["missing"]].tolist()),
            "zero_latlon": sorted(spk["ids"][spk["zero"]].tolist()),
            "zip_not_in_census": sorted(spk["ids"][spk["nozip"]].tolist()),
        },
        "bad_rows": bad_info,
    }

    utts.to_csv(out / "utterances.csv", index=False, lineterminator="\n")
    speakers.to_csv(out / "speakers.csv", index=False, quoting=csv.QUOTE_NONNUMERIC,
                    lineterminator="\n")
    census.to_csv(out / "census.csv", index=False, quoting=csv.QUOTE_NONNUMERIC,
                  lineterminator="\n")
    np.save(out / "embeddings.npy", emb)
    (out / "embedding_ids.txt").write_text("\n".join(spk["ids"]) + "\n", encoding="utf-8")
    (out / "planted.json").write_text(json.dumps(planted, indent=1) + "\n", encoding="utf-8")
    return planted


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: this folder)")
    args = ap.parse_args(argv)
    planted = main(args.out, args.seed)
    print(f"wrote sample data to {args.out} (seed {args.seed}); planted: "
          + ", ".join(f"{k} {planted[k]['n_speakers']} speakers x{planted[k]['multiplier']}"
                      for k in ("geographic", "geodemographic", "automatic")))


if __name__ == "__main__":
    _cli()
