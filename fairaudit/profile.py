"""Where an audit's time goes: the stage timings of report.json in reading order.

:func:`fairaudit.audit.audit` records the wall time of every stage in ``result.timings``
(seconds; report.json's ``timings``): ``read``, ``score``, ``read_side_inputs``,
``prepare_speakers``, ``hash_inputs``, then per discoverer key ``discover:<key>``,
``bootstrap:<key>``, ``permutation:<key>``, ``heldout:<key>`` (and any other
``<stage>:<key>`` a newer stage adds), ``bootstrap:overall``, ``worst_utterances``; the
command line adds ``views:<name>`` (HTML, console) and ``write:tables``.  ``total`` is
the audit up to its report (the views and writing come after it).  ``statistics``, when
present, is the wall time of the discoverers' statistics run side by side in worker
processes (:mod:`fairaudit.stats.parallel`): their own stages then overlap in time, and
with the audit process's own work meanwhile (worst utterances, drill-downs, the overall
interval, rate ratios); ``statistics_wait`` is the part of it the audit process spent
waiting for the workers, ``resamples`` the part it spent drawing the kept speaker
resamples the workers share (:func:`fairaudit.intervals.share_resamples`).
``write:scored_tables`` is the time a forked process spent writing speaker_scores.csv and
utterance_scores.parquet while discovery ran (large audits), ``shared_draws`` the time
another spent drawing the statistics' shared resamples and permutations meanwhile
(:func:`fairaudit.stats.parallel.start_shared_draws`): shown, not added to the total.
"""
from __future__ import annotations

from typing import Mapping

#: stages before discovery, in pipeline order (``score:<system>`` sorts with ``score``)
LEADING = ("read", "score", "read_side_inputs", "prepare_speakers", "hash_inputs")
#: per-discoverer stages, in the order each discoverer runs them
PER_DISCOVERER = ("discover", "bootstrap", "permutation", "heldout")
#: stages that ran in another process beside the audit's own: shown, not added to the total
BESIDE = ("write:scored_tables", "shared_draws")


def stage_rows(timings: Mapping[str, float]) -> list[tuple[str, float]]:
    """(stage, seconds) rows in reading order, ending with ``other`` (time of ``total`` in
    no recorded stage, when positive) and ``total`` plus what came after it (views, writing).

    Discoverers appear in the order of their first recorded stage; within one, discovery,
    bootstrap, permutations, held-out, then any other stage of that key.
    """
    t = {str(k): float(v) for k, v in timings.items()}
    rows: list[tuple[str, float]] = []
    used: set[str] = set()

    def take(name: str) -> None:
        if name in t and name not in used:
            rows.append((name, t[name]))
            used.add(name)

    for name in LEADING:
        take(name)
        for k in sorted(k for k in t if k.startswith(name + ":")):
            take(k)
    keys: list[str] = []
    for k in t:
        stage, _, key = k.partition(":")
        if key and stage in PER_DISCOVERER and key != "overall" and key not in keys:
            keys.append(key)
    for key in keys:
        for stage in PER_DISCOVERER:
            take(f"{stage}:{key}")
        for k in t:
            if k.partition(":")[2] == key and not k.startswith(("views:", "write:")):
                take(k)
    after = [k for k in t if k.startswith(("views:", "write:"))]
    for k in t:
        if k not in used and k != "total" and k not in after:
            take(k)
    # With ``statistics`` (the wall time of the discoverers' statistics run side by side in
    # worker processes) the per-discoverer statistics stages overlap: only the wall counts.
    # The audit process works meanwhile (worst utterances, drill-downs, rate ratios): its
    # own rows plus ``statistics_wait`` (its wait for the last result) make up its time.
    parallel = "statistics" in t
    take("statistics")
    take("statistics_wait")
    waited = "statistics_wait" in t
    inside = sum(v for k, v in rows if not (parallel and k.partition(":")[0] in PER_DISCOVERER[1:]
                                            and k.partition(":")[2] != "overall")
                 and not (waited and k == "statistics") and k not in BESIDE)
    if "total" in t:
        other = t["total"] - inside
        if other > 0.005:
            rows.append(("other", other))
    for k in after:
        take(k)
    if "total" in t:
        rows.append(("total", t["total"] + sum(t[k] for k in after if k not in BESIDE)))
    return rows


def format_rows(rows: list[tuple[str, float]], width: int = 34) -> str:
    """The rows as a plain-text table: stage, seconds, share of the total (%)."""
    total = next((v for k, v in rows if k == "total"), sum(v for _, v in rows)) or 1.0
    lines = [f"{'stage':<{width}}{'seconds':>10}{'share %':>9}"]
    for name, sec in rows:
        lines.append(f"{name:<{width}}{sec:>10.2f}{100.0 * sec / total:>9.1f}")
    if any(name == "statistics" for name, _ in rows):
        lines.append("statistics = wall time of the discoverers' bootstrap, permutation and held-out stages, run side "
                     "by side in worker processes (their rows overlap in time, and with the audit process's own "
                     "work meanwhile); statistics_wait = the part of it the audit process waited")
    if any(name in BESIDE for name, _ in rows):
        lines.append("write:scored_tables, shared_draws = the speaker and utterance tables, and the statistics' "
                     "shared random draws, made by forked processes while discovery ran (not part of the total)")
    return "\n".join(lines)
