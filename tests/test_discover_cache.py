"""The digest that keys the discoverers' count-free caches: equal values give equal
keys, any changed value, row order or slice a new one (Arrow columns by their layout)."""
import numpy as np
import pandas as pd

from fairaudit.discover.cache import frame_key


def _table(n=300):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"speaker_id": pd.array([f"s{i:05d}" for i in range(n)], dtype="string[pyarrow]"),
                         "accent": pd.array(rng.choice(["us", "uk", None], n).tolist(), dtype="string[pyarrow]"),
                         "age": rng.integers(18, 80, n).astype(float),
                         "zip": np.array([f"{z:05d}" for z in rng.integers(0, 99999, n)], dtype=object)})


def test_equal_values_equal_keys_and_every_change_a_new_key():
    t = _table()
    cols = ["speaker_id", "accent", "age", "zip"]
    key = frame_key(t, cols, 1)
    assert frame_key(t.copy(), cols, 1) == key
    assert frame_key(t, cols, 2) != key                       # extras are part of the key
    for col, value in (("accent", "uk"), ("age", 99.0), ("zip", "00000"), ("speaker_id", "other")):
        changed = t.copy()
        changed.loc[changed.index[7], col] = value if changed.loc[changed.index[7], col] != value else "x"
        assert frame_key(changed, cols, 1) != key, col
    missing = t.copy()
    missing.loc[missing.index[0], "accent"] = None if t.loc[0, "accent"] is not pd.NA else "us"
    assert frame_key(missing, cols, 1) != key
    assert frame_key(t.iloc[::-1], cols, 1) != key           # row order counts
    # slices of one Arrow buffer: same buffers, other offsets and lengths
    assert frame_key(t.iloc[:100], cols, 1) != frame_key(t.iloc[1:101], cols, 1)
    assert frame_key(t.iloc[:100], cols, 1) != frame_key(t.iloc[:101], cols, 1)
    # the same values re-laid out (a slice copied into new buffers) are the same values
    same = t.iloc[10:60].reset_index(drop=True)
    rebuilt = same.copy()
    rebuilt["speaker_id"] = pd.array(list(same["speaker_id"]), dtype="string[pyarrow]")
    rebuilt["accent"] = pd.array(list(same["accent"]), dtype="string[pyarrow]")
    a, b = frame_key(same, ["age", "zip"], 1), frame_key(rebuilt, ["age", "zip"], 1)
    assert a == b
