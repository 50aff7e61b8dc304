"""The pandas peer of the KPI benchmark: six KPIs of the carelens catalogue written the way an
analyst would in pandas (pyarrow Parquet reader), on the same snapshot and the same
definitions and windows (k = 11 primary suppression; no intervals, no complementary
suppression, so pandas does less work than carelens). Prints one JSON document.

usage: python pandas_peer.py SNAPSHOT_DIR
"""
import json, resource, sys, time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

snap = Path(sys.argv[1])
manifest = json.loads((snap / "manifest.json").read_text())
as_of = pd.Timestamp(manifest["as_of"])
K = 11


def read(table, columns, filters=None):
    """The table's Parquet dataset (pyarrow discovers the Hive partitions and prunes them by
    `filters`, as carelens prunes by the kind), dates as datetime64."""
    df = pd.read_parquet(snap / table, columns=columns, filters=filters)
    for c in ("date", "until", "start", "booked", "created"):
        if c in df:
            df[c] = pd.to_datetime(df[c])
    return df


def suppress(df, count):
    df = df.copy()
    df["suppressed"] = df[count] < K
    return df


timings = {}


def timed(name):
    def wrap(f):
        t = time.perf_counter()
        out = f()
        timings[name] = time.perf_counter() - t
        return out
    return wrap


frm = as_of - pd.Timedelta(days=364)
patients = read("patients", None)


@timed("prevalence")
def _():
    ev = read("events", ["pid", "date", "kind", "code3", "chapter", "status"], [("kind", "=", "diagnosis")])
    ev = ev[(ev.kind == "diagnosis") & (ev.date <= as_of) & ((ev.status == "active") | (ev.date >= frm))]
    cases = ev.groupby(["code3", "chapter"]).pid.nunique().rename("numerator").reset_index()
    cases["denominator"] = len(patients)
    cases["value"] = cases.numerator / cases.denominator
    return suppress(cases, "numerator")


@timed("incidence")
def _():
    start = as_of - pd.Timedelta(days=3 * 365 - 1)
    ev = read("events", ["pid", "date", "kind", "code3", "is_first"], [("kind", "=", "diagnosis")])
    ev = ev[(ev.kind == "diagnosis") & ev.is_first & (ev.date <= as_of)]
    ev["period"] = ev.date.dt.to_period("Q").astype(str).where(ev.date >= start, "before")
    cases = ev.groupby(["code3", "period"]).pid.nunique().unstack(fill_value=0)
    before = cases.pop("before") if "before" in cases else 0
    at_risk = len(patients) - before
    rows = []
    for period in sorted(cases.columns):
        c = cases[period]
        py = (at_risk - c / 2) * 91.3 / 365.25
        rows.append(pd.DataFrame({"code": cases.index, "period": period, "cases": c.values, "rate": (1000 * c / py).values}))
        at_risk = at_risk - c
    return suppress(pd.concat(rows), "cases")


@timed("vaccination_coverage")
def _():
    ev = read("events", ["pid", "date", "kind", "code", "age"], [("kind", "=", "vaccination")])
    ev = ev[ev.kind == "vaccination"]
    out = []
    for key, atc, doses, rule, lo, hi in [
        ("hexavalent_3", "J07CA09", 3, ("before", 2), 2, 17), ("pneumococcal_3", "J07AL02", 3, ("before", 2), 2, 17),
        ("mmrv_1", "J07BD54", 1, ("before", 2), 2, 17), ("mmrv_2", "J07BD54", 2, ("before", 2), 2, 17),
        ("hpv_2", "J07BM03", 2, ("before", 15), 15, 17), ("td_10y", "J07AM51", 1, ("within", 3653), 18, 200),
        ("covid19_2", "J07BN01", 2, ("ever", 0), 18, 200), ("influenza_1y", "J07BB02", 1, ("within", 365), 60, 200),
        ("ppsv23", "J07AL01", 1, ("ever", 0), 60, 200),
    ]:
        v = ev[(ev.code == atc) & (ev.date <= as_of)]
        if rule[0] == "before":
            v = v[v.age < rule[1]]
        elif rule[0] == "within":
            v = v[v.date > as_of - pd.Timedelta(days=rule[1])]
        n = v.groupby("pid").size()
        cohort = patients[(patients.age >= lo) & (patients.age <= hi)]
        covered = cohort.pid.map(n).fillna(0) >= doses
        out.append({"vaccine": key, "numerator": int(covered.sum()), "denominator": len(cohort)})
    return suppress(pd.DataFrame(out), "denominator")


appts = None


@timed("no_show_rate")
def _():
    global appts
    appts = read("appointments", ["pid", "specialty", "insurance", "status", "start", "wait_days"])
    a = appts[appts.status.isin(["completed", "checked_in", "no_show"]) & (appts.start >= frm) & (appts.start <= as_of)]
    g = a.assign(ns=a.status == "no_show").groupby("specialty").agg(numerator=("ns", "sum"), denominator=("ns", "size"), persons=("pid", "nunique"))
    g["value"] = g.numerator / g.denominator
    return suppress(g, "persons")


@timed("waiting_time")
def _():
    a = appts[(appts.status != "cancelled") & (appts.start >= frm) & (appts.start <= as_of)]
    g = a.groupby(["specialty", "insurance"]).agg(
        median=("wait_days", "median"), p90=("wait_days", lambda s: s.quantile(0.9)), mean=("wait_days", "mean"), persons=("pid", "nunique"))
    return suppress(g, "persons")


@timed("polypharmacy")
def _():
    ev = read("events", ["pid", "date", "kind", "code", "until"],
              [("kind", "in", ["medication", "psychiatric_medication"])])
    m = ev[ev.kind.isin(["medication", "psychiatric_medication"]) & (ev.date <= as_of) & (ev.until.isna() | (ev.until >= as_of))]
    n = m.groupby("pid").code.nunique()
    poly = patients.pid.map(n).fillna(0) >= 5
    return {"numerator": int(poly.sum()), "denominator": len(patients)}


print(json.dumps({
    "kpis": timings,
    "total_seconds": sum(timings.values()),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "pandas": pd.__version__,
}))
