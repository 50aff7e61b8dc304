//! The KPI catalogue. Each KPI is one SQL query over the snapshot tables (`patients`,
//! `events`, `appointments`, `capacity`, `predictions`, `feedback`), written in the subset
//! polars SQL and Spark SQL share (ordinal `GROUP BY`, `DATE('…')` literals, no
//! engine-specific functions), so the same text runs on a distributed engine over the same
//! Parquet. The query returns counts per cell; Rust adds what SQL engines leave to the
//! client: rates, confidence intervals, person-years, age standardisation, trends and
//! small-cell suppression.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Months, NaiveDate};
use polars::prelude::*;
use polars::sql::SQLContext;
use serde::Serialize;

use crate::error::{AnalyticsError, Result};
use crate::snapshot::{Snapshot, TABLES};
use crate::stats::{ESP2013, Z95, poisson, trend, wilson};
use crate::suppress::{Gate, suppress};

/// Cells describing fewer persons than this are suppressed unless the caller sets another k.
pub const DEFAULT_K: u32 = 11;

/// Time granularity of `period` strata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Month,
    Quarter,
    Year,
}

impl Period {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "month" => Ok(Self::Month),
            "quarter" => Ok(Self::Quarter),
            "year" => Ok(Self::Year),
            _ => Err(AnalyticsError::Invalid(format!("unknown period `{s}`; use month, quarter or year"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// The SQL expression of a period key over a table alias with `year` and `month` columns.
    fn key_expr(self, alias: &str) -> String {
        match self {
            Self::Month => format!("{alias}.year * 100 + {alias}.month"),
            Self::Quarter => format!(
                "{alias}.year * 10 + CASE WHEN {alias}.month <= 3 THEN 1 WHEN {alias}.month <= 6 THEN 2 \
                 WHEN {alias}.month <= 9 THEN 3 ELSE 4 END"
            ),
            Self::Year => format!("{alias}.year"),
        }
    }

    fn key(self, d: NaiveDate) -> i64 {
        let (y, m) = (i64::from(d.year()), i64::from(d.month()));
        match self {
            Self::Month => y * 100 + m,
            Self::Quarter => y * 10 + (m - 1) / 3 + 1,
            Self::Year => y,
        }
    }

    fn label(self, key: i64) -> String {
        match self {
            Self::Month => format!("{}-{:02}", key / 100, key % 100),
            Self::Quarter => format!("{}-Q{}", key / 10, key % 10),
            Self::Year => key.to_string(),
        }
    }

    fn start(self, d: NaiveDate) -> NaiveDate {
        let month0 = match self {
            Self::Month => d.month0(),
            Self::Quarter => d.month0() / 3 * 3,
            Self::Year => 0,
        };
        NaiveDate::from_ymd_opt(d.year(), month0 + 1, 1).unwrap_or(d)
    }

    fn next(self, start: NaiveDate) -> NaiveDate {
        let months = match self {
            Self::Month => 1,
            Self::Quarter => 3,
            Self::Year => 12,
        };
        start.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX)
    }

    /// The periods `[from, to]` covers only in part: label, days covered, days in the period.
    fn partial(self, from: NaiveDate, to: NaiveDate) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        let mut s = self.start(from);
        while s <= to {
            let e = self.next(s);
            let covered = ((e - Days::new(1)).min(to) - s.max(from)).num_days() + 1;
            let full = (e - s).num_days();
            if covered < full {
                out.push((self.label(self.key(s)), covered, full));
            }
            s = e;
        }
        out
    }

    /// The periods overlapping `[from, to]`: key, label and the days of the overlap.
    fn between(self, from: NaiveDate, to: NaiveDate) -> Vec<(i64, String, f64)> {
        let mut out = Vec::new();
        let mut s = self.start(from);
        while s <= to {
            let e = self.next(s);
            let lo = s.max(from);
            let hi = (e - Days::new(1)).min(to);
            out.push((self.key(s), self.label(self.key(s)), ((hi - lo).num_days() + 1) as f64));
            s = e;
        }
        out
    }
}

/// What an analyst asks: strata, window, period and k.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub by: Vec<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub period: Period,
    pub k: u32,
}

impl Default for Query {
    fn default() -> Self {
        Self { by: vec![], from: None, to: None, period: Period::Quarter, k: DEFAULT_K }
    }
}

/// A resolved query: the window, and the strata as (name, SQL expression) per table alias.
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: Period,
    by: Vec<(&'static str, String)>,
}

impl Window {
    fn d(d: NaiveDate) -> String {
        format!("DATE('{}')", d.format("%Y-%m-%d"))
    }
    pub fn from_sql(&self) -> String {
        Self::d(self.from)
    }
    pub fn to_sql(&self) -> String {
        Self::d(self.to)
    }
    /// `expr AS name, ` for each stratum.
    fn sel(&self) -> String {
        self.by.iter().map(|(n, e)| format!("{e} AS {n}, ")).collect()
    }
    /// ` GROUP BY 1, …` over `fixed` leading columns plus the strata; empty when none.
    fn group(&self, fixed: usize) -> String {
        let n = fixed + self.by.len();
        if n == 0 {
            return String::new();
        }
        format!(" GROUP BY {}", (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
    }
    /// `alias.name, ` for each stratum.
    fn names(&self, alias: &str) -> String {
        self.by.iter().map(|(n, _)| format!("{alias}.{n}, ")).collect()
    }
    /// A join of `right` to `left` on every stratum, or a cross join when there are none.
    fn join(&self, kind: &str, right: &str, left: &str, extra: &[&str]) -> String {
        let mut conds: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        conds.extend(self.by.iter().map(|(n, _)| format!("{right}.{n} = {left}.{n}")));
        if conds.is_empty() {
            format!("CROSS JOIN {right}")
        } else {
            format!("{kind} JOIN {right} ON {}", conds.join(" AND "))
        }
    }
    /// Year·100 + month of the window's first and last month.
    fn months(&self) -> (i32, i32) {
        (self.from.year() * 100 + self.from.month() as i32, self.to.year() * 100 + self.to.month() as i32)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// numerator/denominator with a Wilson interval.
    Proportion,
    /// Prevalence directly standardised to the ESP 2013 over age bands.
    Standardised,
    /// New cases per 1 000 person-years per period, with a trend.
    Incidence,
    /// Median, p90 and mean of waiting days.
    Quantiles,
    /// Booked over offered slots.
    Utilisation,
    /// Predicted-positive rate beside the recorded prevalence.
    PredictedVsRecorded,
    /// Mean predicted probability against the observed rate, with the trend of the gap.
    Calibration,
}

/// One KPI of the catalogue.
pub struct KpiDef {
    pub name: &'static str,
    pub title: &'static str,
    pub topic: &'static str,
    /// What the value is in, for axis labels.
    pub unit: &'static str,
    /// Numerator, denominator, window and strata, in words.
    pub definition: &'static str,
    /// Leading result columns that are not strata (e.g. the diagnosis).
    pub keys: &'static [&'static str],
    /// Allowed `--by` strata with their SQL expressions (`@alias` = the period of that table).
    pub strata: &'static [(&'static str, &'static str)],
    pub default_by: &'static [&'static str],
    /// Default window length in days, ending at the snapshot's `as_of`.
    pub window_days: u64,
    kind: Kind,
    sql: fn(&Window) -> String,
}

impl KpiDef {
    pub fn allowed(&self) -> Vec<&'static str> {
        self.strata.iter().map(|s| s.0).collect()
    }

    /// Checks the strata and the window, filling defaults from the snapshot's `as_of`.
    pub fn window(&self, q: &Query, as_of: NaiveDate) -> Result<Window> {
        let to = q.to.unwrap_or(as_of);
        let from = q.from.unwrap_or_else(|| to - Days::new(self.window_days.saturating_sub(1)));
        if from > to {
            return Err(AnalyticsError::EmptyRange { from: from.to_string(), to: to.to_string() });
        }
        let mut by: Vec<&str> = if q.by.is_empty() { self.default_by.to_vec() } else { vec![] };
        for b in &q.by {
            let b = b.trim();
            let b = if b == "age" { "age_band" } else { b };
            if b.is_empty() || by.contains(&b) {
                continue;
            }
            by.push(b);
        }
        if self.kind == Kind::Incidence && !by.contains(&"period") {
            by.push("period");
        }
        let mut out = Vec::new();
        for b in by {
            let Some((name, expr)) = self.strata.iter().find(|s| s.0 == b) else {
                return Err(AnalyticsError::InvalidStratum {
                    kpi: self.name.into(),
                    stratum: b.into(),
                    allowed: self.allowed().join(", "),
                });
            };
            let expr = match expr.strip_prefix('@') {
                Some(alias) => q.period.key_expr(alias),
                None => (*expr).to_owned(),
            };
            out.push((*name, expr));
        }
        // Incidence needs the period last, after the other strata.
        if let Some(i) = out.iter().position(|s| s.0 == "period") {
            let p = out.remove(i);
            out.push(p);
        }
        Ok(Window { from, to, period: q.period, by: out })
    }

    /// The SQL this KPI runs for `q` on a snapshot taken on `as_of`.
    pub fn sql(&self, q: &Query, as_of: NaiveDate) -> Result<String> {
        Ok((self.sql)(&self.window(q, as_of)?))
    }
}

const PATIENT_STRATA: &[(&str, &str)] =
    &[("age_band", "p.age_band"), ("sex", "p.sex"), ("region", "p.region"), ("insurance", "p.insurance")];
const BOOKING_STRATA: &[(&str, &str)] = &[
    ("specialty", "a.specialty"),
    ("region", "a.region"),
    ("insurance", "a.insurance"),
    ("age_band", "p.age_band"),
    ("sex", "p.sex"),
    ("period", "@a"),
];

/// The whole catalogue, in the order `kpi list` shows it.
pub static CATALOGUE: &[KpiDef] = &[
    KpiDef {
        name: "prevalence",
        title: "Prevalence per diagnosis",
        topic: "diseases",
        unit: "proportion of persons",
        definition: "Numerator: persons with a recorded diagnosis in the ICD-10 category dated on or before the \
            window's end that is either still active or was recorded within the window. Denominator: all persons \
            in the snapshot population. Window: default the 365 days up to the snapshot date. One row per ICD-10 \
            category (with its chapter) and stratum; 95 % Wilson interval.",
        keys: &["code", "chapter"],
        strata: PATIENT_STRATA,
        default_by: &[],
        window_days: 365,
        kind: Kind::Proportion,
        sql: prevalence_sql,
    },
    KpiDef {
        name: "prevalence_std",
        title: "Age-standardised prevalence (ESP 2013)",
        topic: "diseases",
        unit: "proportion of persons",
        definition: "Prevalence as in `prevalence`, computed per five-year age band and directly standardised to \
            the European Standard Population 2013 (weights renormalised over the bands the stratum has \
            persons in). Numerator and denominator are the crude counts; the interval is normal on the \
            weighted band variances. Strata: sex, region, insurance (age is what it standardises).",
        keys: &["code", "chapter"],
        strata: &[("sex", "p.sex"), ("region", "p.region"), ("insurance", "p.insurance")],
        default_by: &[],
        window_days: 365,
        kind: Kind::Standardised,
        sql: prevalence_std_sql,
    },
    KpiDef {
        name: "incidence",
        title: "Incidence per 1 000 person-years",
        topic: "diseases",
        unit: "new cases per 1 000 person-years",
        definition: "Numerator: persons whose first-ever recorded diagnosis in the ICD-10 category falls in the \
            period. Person-years: persons at risk at the period's start (population minus earlier first \
            diagnoses) minus half the period's new cases, times the period's length in the window. Window: \
            default three years up to the snapshot date, by quarter (`--period`). 95 % Poisson interval \
            (Byar); the trend is the least-squares slope of the rate over published periods, rising or \
            falling when its 95 % interval excludes 0.",
        keys: &["code", "chapter"],
        strata: &[
            ("age_band", "p.age_band"),
            ("sex", "p.sex"),
            ("region", "p.region"),
            ("insurance", "p.insurance"),
            ("period", "@e"),
        ],
        default_by: &["period"],
        window_days: 3 * 365,
        kind: Kind::Incidence,
        sql: incidence_sql,
    },
    KpiDef {
        name: "vaccination_coverage",
        title: "Vaccination coverage against the schedule",
        topic: "prevention",
        unit: "proportion of persons",
        definition: "Per schedule entry (STIKO-like, see `carelens kpi show vaccination_coverage`): numerator: \
            persons in the entry's age cohort (age at the snapshot date) with the required doses of the vaccine \
            (ATC) — before the due age, within the recency window, or ever, as the entry says — recorded on or \
            before the window's end. Denominator: persons in the cohort. Strata: birth year (cohort), age band, \
            sex, region, insurance.",
        keys: &["vaccine"],
        strata: &[
            ("birth_year", "p.birth_year"),
            ("age_band", "p.age_band"),
            ("sex", "p.sex"),
            ("region", "p.region"),
            ("insurance", "p.insurance"),
        ],
        default_by: &[],
        window_days: 365,
        kind: Kind::Proportion,
        sql: vaccination_sql,
    },
    KpiDef {
        name: "repeat_visit_30d",
        title: "30-day repeat-visit rate",
        topic: "care",
        unit: "proportion of visits",
        definition: "Denominator: attended appointments (completed or checked in) starting in the window and at \
            least 30 days before its end. Numerator: those followed by the same person's next attended \
            appointment within 30 days (the outpatient analogue of 30-day readmission). Strata: specialty and \
            region of the index visit's provider, insurance, age band, sex, period.",
        keys: &[],
        strata: BOOKING_STRATA,
        default_by: &[],
        window_days: 365,
        kind: Kind::Proportion,
        sql: repeat_visit_sql,
    },
    KpiDef {
        name: "polypharmacy",
        title: "Polypharmacy (≥ 5 concurrent medications)",
        topic: "care",
        unit: "proportion of persons",
        definition: "Numerator: persons with at least five distinct medications (ATC, psychiatric included) \
            started on or before the window's end and not ended before it. Denominator: all persons. The window's \
            end is the reference day; its start is not used.",
        keys: &[],
        strata: PATIENT_STRATA,
        default_by: &[],
        window_days: 1,
        kind: Kind::Proportion,
        sql: polypharmacy_sql,
    },
    KpiDef {
        name: "therapy_continuity",
        title: "Psychotherapy continuity",
        topic: "mental health",
        unit: "proportion of persons",
        definition: "Denominator: persons with at least two psychotherapy sessions in the window. Numerator: those \
            whose consecutive sessions in the window were never more than 21 days apart (weekly therapy missing \
            at most two sessions).",
        keys: &[],
        strata: PATIENT_STRATA,
        default_by: &[],
        window_days: 365,
        kind: Kind::Proportion,
        sql: therapy_sql,
    },
    KpiDef {
        name: "no_show_rate",
        title: "No-show rate",
        topic: "booking",
        unit: "proportion of appointments",
        definition: "Denominator: appointments starting in the window that were attended (completed, checked in) \
            or missed (no-show). Numerator: the no-shows. Strata: specialty and region of the provider, the \
            patient's insurance, age band, sex, period.",
        keys: &[],
        strata: BOOKING_STRATA,
        default_by: &["specialty"],
        window_days: 365,
        kind: Kind::Proportion,
        sql: no_show_sql,
    },
    KpiDef {
        name: "cancellation_rate",
        title: "Cancellation rate",
        topic: "booking",
        unit: "proportion of appointments",
        definition: "Denominator: all appointments starting in the window. Numerator: the cancelled ones.",
        keys: &[],
        strata: BOOKING_STRATA,
        default_by: &["specialty"],
        window_days: 365,
        kind: Kind::Proportion,
        sql: cancellation_sql,
    },
    KpiDef {
        name: "waiting_time",
        title: "Waiting days from booking to appointment",
        topic: "booking",
        unit: "days",
        definition: "Days from the booking to the appointment for appointments starting in the window that were \
            not cancelled: median (the value), 90th percentile (linear interpolation) and mean. Strata: specialty \
            and region of the provider, insurance (statutory vs private: the access-gap question), age band, \
            sex, period.",
        keys: &[],
        strata: BOOKING_STRATA,
        default_by: &["specialty", "insurance"],
        window_days: 365,
        kind: Kind::Quantiles,
        sql: waiting_sql,
    },
    KpiDef {
        name: "provider_utilisation",
        title: "Provider utilisation",
        topic: "booking",
        unit: "booked share of offered slots",
        definition: "Numerator: appointments (not cancelled) starting in the calendar months the window touches. \
            Denominator: slots the providers' schedule rules offered in those months. Strata: specialty, region, \
            period.",
        keys: &[],
        strata: &[("specialty", "x.specialty"), ("region", "x.region"), ("period", "@x")],
        default_by: &["specialty"],
        window_days: 365,
        kind: Kind::Utilisation,
        sql: utilisation_sql,
    },
    KpiDef {
        name: "predicted_positive_rate",
        title: "Predicted-positive rate vs recorded prevalence",
        topic: "models",
        unit: "proportion of persons",
        definition: "Over each person's latest prediction set: numerator: persons whose probability for the \
            diagnosis reaches its threshold (0.5 without one); denominator: persons with a prediction for it. \
            `recorded` is the share of the same persons with the diagnosis already recorded when predicted; a \
            predicted-positive rate far above it flags over-calling.",
        keys: &["code"],
        strata: PATIENT_STRATA,
        default_by: &[],
        window_days: 365,
        kind: Kind::PredictedVsRecorded,
        sql: predicted_sql,
    },
    KpiDef {
        name: "confirmation_rate",
        title: "Doctor confirmation rate",
        topic: "models",
        unit: "proportion of verdicts",
        definition: "Doctors' verdicts on suggested diagnoses given in the window: numerator: confirmed; \
            denominator: confirmed plus rejected. Persons are the patients the verdicts are about.",
        keys: &["code"],
        strata: &[("period", "@f")],
        default_by: &[],
        window_days: 365,
        kind: Kind::Proportion,
        sql: confirmation_sql,
    },
    KpiDef {
        name: "calibration_drift",
        title: "Calibration drift",
        topic: "models",
        unit: "observed minus mean predicted",
        definition: "Per diagnosis and period of prediction (all set versions created in the window): the mean \
            predicted probability, the observed rate (the diagnosis is recorded by the window's end) and the gap \
            observed − predicted (0 = calibrated). The trend is the slope of the gap over published periods.",
        keys: &["code"],
        strata: &[("period", "@pr")],
        default_by: &["period"],
        window_days: 365,
        kind: Kind::Calibration,
        sql: calibration_sql,
    },
];

/// One entry of the vaccination schedule.
pub struct ScheduleEntry {
    pub key: &'static str,
    pub atc: &'static str,
    pub doses: u32,
    pub rule: DoseRule,
    pub cohort: (i32, i32),
}

pub enum DoseRule {
    /// Doses given before this birthday.
    BeforeAge(i32),
    /// A dose within this many days before the window's end.
    Within(u64),
    Ever,
}

/// The STIKO-like schedule coverage is measured against.
pub const SCHEDULE: &[ScheduleEntry] = &[
    ScheduleEntry { key: "hexavalent_3", atc: "J07CA09", doses: 3, rule: DoseRule::BeforeAge(2), cohort: (2, 17) },
    ScheduleEntry { key: "pneumococcal_3", atc: "J07AL02", doses: 3, rule: DoseRule::BeforeAge(2), cohort: (2, 17) },
    ScheduleEntry { key: "mmrv_1", atc: "J07BD54", doses: 1, rule: DoseRule::BeforeAge(2), cohort: (2, 17) },
    ScheduleEntry { key: "mmrv_2", atc: "J07BD54", doses: 2, rule: DoseRule::BeforeAge(2), cohort: (2, 17) },
    ScheduleEntry { key: "hpv_2", atc: "J07BM03", doses: 2, rule: DoseRule::BeforeAge(15), cohort: (15, 17) },
    ScheduleEntry { key: "td_10y", atc: "J07AM51", doses: 1, rule: DoseRule::Within(3653), cohort: (18, 200) },
    ScheduleEntry { key: "covid19_2", atc: "J07BN01", doses: 2, rule: DoseRule::Ever, cohort: (18, 200) },
    ScheduleEntry { key: "influenza_1y", atc: "J07BB02", doses: 1, rule: DoseRule::Within(365), cohort: (60, 200) },
    ScheduleEntry { key: "ppsv23", atc: "J07AL01", doses: 1, rule: DoseRule::Ever, cohort: (60, 200) },
];

fn prevalence_sql(w: &Window) -> String {
    let (sel, names) = (w.sel(), w.names("pop"));
    format!(
        "WITH pop AS (SELECT {sel}COUNT(*) AS denominator FROM patients p{g0}),\n\
         cases AS (SELECT e.code3 AS code, e.chapter AS chapter, {sel}COUNT(DISTINCT e.pid) AS numerator\n  \
           FROM events e JOIN patients p ON e.pid = p.pid\n  \
           WHERE e.kind = 'diagnosis' AND e.date <= {to} AND (e.status = 'active' OR e.date >= {from}){g2}),\n\
         codes AS (SELECT DISTINCT code, chapter FROM cases)\n\
         SELECT codes.code, codes.chapter, {names}COALESCE(cases.numerator, 0) AS numerator, pop.denominator,\n  \
           pop.denominator AS persons, COALESCE(cases.numerator, 0) AS case_persons\n\
         FROM codes CROSS JOIN pop {join}",
        g0 = w.group(0),
        g2 = w.group(2),
        to = w.to_sql(),
        from = w.from_sql(),
        join = w.join("LEFT", "cases", "pop", &["cases.code = codes.code"]),
    )
}

fn prevalence_std_sql(w: &Window) -> String {
    let mut banded = Window { from: w.from, to: w.to, period: w.period, by: w.by.clone() };
    banded.by.push(("age_band", "p.age_band".into()));
    prevalence_sql(&banded)
}

fn incidence_sql(w: &Window) -> String {
    // Strata without the period (last): the population is per stratum, not per period.
    let pop = Window { from: w.from, to: w.to, period: w.period, by: w.by[..w.by.len() - 1].to_vec() };
    let (period_name, period_expr) = &w.by[w.by.len() - 1];
    format!(
        "WITH pop AS (SELECT {psel}COUNT(*) AS population FROM patients p{g0}),\n\
         cases AS (SELECT e.code3 AS code, e.chapter AS chapter, {psel}\
           CASE WHEN e.date < {from} THEN 0 ELSE {period_expr} END AS {period_name}, COUNT(DISTINCT e.pid) AS cases\n  \
           FROM events e JOIN patients p ON e.pid = p.pid\n  \
           WHERE e.kind = 'diagnosis' AND e.is_first AND e.date <= {to}{g3})\n\
         SELECT cases.code, cases.chapter, {names}cases.{period_name}, cases.cases, pop.population\n\
         FROM cases {join}",
        psel = pop.sel(),
        g0 = pop.group(0),
        g3 = pop.group(3),
        names = pop.names("cases"),
        from = w.from_sql(),
        to = w.to_sql(),
        join = pop.join("JOIN", "pop", "cases", &[]),
    )
}

fn vaccination_sql(w: &Window) -> String {
    let sel = w.sel();
    let parts: Vec<String> = SCHEDULE
        .iter()
        .map(|s| {
            let cond = match s.rule {
                DoseRule::BeforeAge(age) => format!("age < {age} AND date <= {}", w.to_sql()),
                DoseRule::Within(days) => {
                    format!("date > {} AND date <= {}", Window::d(w.to - Days::new(days)), w.to_sql())
                }
                DoseRule::Ever => format!("date <= {}", w.to_sql()),
            };
            format!(
                "SELECT '{key}' AS vaccine, {sel}SUM(CASE WHEN v.n >= {doses} THEN 1 ELSE 0 END) AS numerator, \
                 COUNT(*) AS denominator, COUNT(*) AS persons, SUM(CASE WHEN v.n >= {doses} THEN 1 ELSE 0 END) AS case_persons\n  \
                 FROM patients p LEFT JOIN (SELECT pid, COUNT(*) AS n FROM events \
                 WHERE kind = 'vaccination' AND code = '{atc}' AND {cond} GROUP BY 1) v ON v.pid = p.pid\n  \
                 WHERE p.age >= {lo} AND p.age <= {hi}{g}",
                key = s.key,
                doses = s.doses,
                atc = s.atc,
                lo = s.cohort.0,
                hi = s.cohort.1,
                g = w.group(1),
            )
        })
        .collect();
    parts.join("\nUNION ALL\n")
}

fn proportion_of_appointments(w: &Window, numerator: &str, filter: &str) -> String {
    format!(
        "SELECT {sel}SUM(CASE WHEN {numerator} THEN 1 ELSE 0 END) AS numerator, COUNT(*) AS denominator,\n  \
           COUNT(DISTINCT a.pid) AS persons, COUNT(DISTINCT CASE WHEN {numerator} THEN a.pid END) AS case_persons\n\
         FROM appointments a JOIN patients p ON a.pid = p.pid\n\
         WHERE {filter}{g}",
        sel = w.sel(),
        g = w.group(0),
    )
}

fn repeat_visit_sql(w: &Window) -> String {
    let last = w.to - Days::new(30);
    proportion_of_appointments(
        w,
        "a.next_days <= 30",
        &format!(
            "a.status IN ('completed', 'checked_in') AND a.start >= {} AND a.start <= {}",
            w.from_sql(),
            Window::d(last)
        ),
    )
}

fn no_show_sql(w: &Window) -> String {
    proportion_of_appointments(
        w,
        "a.status = 'no_show'",
        &format!(
            "a.status IN ('completed', 'checked_in', 'no_show') AND a.start >= {} AND a.start <= {}",
            w.from_sql(),
            w.to_sql()
        ),
    )
}

fn cancellation_sql(w: &Window) -> String {
    proportion_of_appointments(
        w,
        "a.status = 'cancelled'",
        &format!("a.start >= {} AND a.start <= {}", w.from_sql(), w.to_sql()),
    )
}

fn waiting_sql(w: &Window) -> String {
    format!(
        "SELECT {sel}MEDIAN(a.wait_days) AS median, QUANTILE_CONT(a.wait_days, 0.9) AS p90, AVG(a.wait_days) AS mean,\n  \
           COUNT(*) AS denominator, COUNT(DISTINCT a.pid) AS persons, COUNT(DISTINCT a.pid) AS case_persons\n\
         FROM appointments a JOIN patients p ON a.pid = p.pid\n\
         WHERE a.status <> 'cancelled' AND a.start >= {from} AND a.start <= {to}{g}",
        sel = w.sel(),
        from = w.from_sql(),
        to = w.to_sql(),
        g = w.group(0),
    )
}

fn utilisation_sql(w: &Window) -> String {
    let (lo, hi) = w.months();
    format!(
        "WITH cap AS (SELECT {sel}SUM(x.slots) AS denominator FROM capacity x\n  \
           WHERE x.year * 100 + x.month >= {lo} AND x.year * 100 + x.month <= {hi}{g}),\n\
         used AS (SELECT {sel}COUNT(*) AS numerator, COUNT(DISTINCT x.pid) AS case_persons FROM appointments x\n  \
           WHERE x.status <> 'cancelled' AND x.year * 100 + x.month >= {lo} AND x.year * 100 + x.month <= {hi}{g})\n\
         SELECT {names}COALESCE(used.numerator, 0) AS numerator, cap.denominator,\n  \
           COALESCE(used.case_persons, 0) AS case_persons\n\
         FROM cap {join}",
        sel = w.sel(),
        g = w.group(0),
        names = w.names("cap"),
        join = w.join("LEFT", "used", "cap", &[]),
    )
}

fn polypharmacy_sql(w: &Window) -> String {
    format!(
        "SELECT {sel}SUM(CASE WHEN m.n >= 5 THEN 1 ELSE 0 END) AS numerator, COUNT(*) AS denominator,\n  \
           COUNT(*) AS persons, SUM(CASE WHEN m.n >= 5 THEN 1 ELSE 0 END) AS case_persons\n\
         FROM patients p LEFT JOIN (SELECT pid, COUNT(DISTINCT code) AS n FROM events\n  \
           WHERE kind IN ('medication', 'psychiatric_medication') AND date <= {to} AND (until IS NULL OR until >= {to})\n  \
           GROUP BY 1) m ON m.pid = p.pid{g}",
        sel = w.sel(),
        to = w.to_sql(),
        g = w.group(0),
    )
}

fn therapy_sql(w: &Window) -> String {
    format!(
        "SELECT {sel}SUM(CASE WHEN t.max_gap <= 21 THEN 1 ELSE 0 END) AS numerator, COUNT(*) AS denominator,\n  \
           COUNT(*) AS persons, SUM(CASE WHEN t.max_gap <= 21 THEN 1 ELSE 0 END) AS case_persons\n\
         FROM (SELECT pid, COUNT(*) AS n, MAX(CASE WHEN prev_date >= {from} THEN gap_days ELSE 0 END) AS max_gap\n  \
           FROM events WHERE kind = 'therapy_session' AND date >= {from} AND date <= {to} GROUP BY 1) t\n\
         JOIN patients p ON p.pid = t.pid\n\
         WHERE t.n >= 2{g}",
        sel = w.sel(),
        from = w.from_sql(),
        to = w.to_sql(),
        g = w.group(0),
    )
}

fn predicted_sql(w: &Window) -> String {
    format!(
        "SELECT pr.code3 AS code, {sel}SUM(CASE WHEN pr.positive THEN 1 ELSE 0 END) AS numerator, COUNT(*) AS denominator,\n  \
           SUM(CASE WHEN pr.known THEN 1 ELSE 0 END) AS recorded,\n  \
           COUNT(DISTINCT pr.pid) AS persons, COUNT(DISTINCT CASE WHEN pr.positive THEN pr.pid END) AS case_persons\n\
         FROM predictions pr JOIN patients p ON p.pid = pr.pid\n\
         WHERE pr.latest AND pr.created <= {to}{g}",
        sel = w.sel(),
        to = w.to_sql(),
        g = w.group(1),
    )
}

fn confirmation_sql(w: &Window) -> String {
    format!(
        "SELECT f.code3 AS code, {sel}SUM(CASE WHEN f.verdict = 'confirmed' THEN 1 ELSE 0 END) AS numerator,\n  \
           COUNT(*) AS denominator, COUNT(DISTINCT f.pid) AS persons,\n  \
           COUNT(DISTINCT CASE WHEN f.verdict = 'confirmed' THEN f.pid END) AS case_persons\n\
         FROM feedback f WHERE f.date >= {from} AND f.date <= {to}{g}",
        sel = w.sel(),
        from = w.from_sql(),
        to = w.to_sql(),
        g = w.group(1),
    )
}

fn calibration_sql(w: &Window) -> String {
    format!(
        "SELECT pr.code3 AS code, {sel}SUM(CAST(ROUND(pr.probability * 1000000) AS BIGINT)) AS micro_predicted,\n  \
           SUM(CASE WHEN d.pid IS NOT NULL THEN 1 ELSE 0 END) AS numerator, COUNT(*) AS denominator,\n  \
           COUNT(DISTINCT pr.pid) AS persons, COUNT(DISTINCT d.pid) AS case_persons\n\
         FROM predictions pr LEFT JOIN (SELECT DISTINCT pid, code3 FROM events\n  \
           WHERE kind = 'diagnosis' AND date <= {to}) d ON d.pid = pr.pid AND d.code3 = pr.code3\n\
         WHERE pr.created >= {from} AND pr.created <= {to}{g}",
        sel = w.sel(),
        from = w.from_sql(),
        to = w.to_sql(),
        g = w.group(1),
    )
}

/// The KPI called `name`.
pub fn find(name: &str) -> Result<&'static KpiDef> {
    CATALOGUE.iter().find(|k| k.name == name).ok_or_else(|| AnalyticsError::UnknownKpi {
        name: name.into(),
        known: CATALOGUE.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
    })
}

/// One cell of a result: its keys (fixed keys, then strata, then labels such as the trend)
/// and its measures; suppressed cells keep their keys and lose every measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub keys: Vec<String>,
    pub values: Vec<Option<f64>>,
    pub suppressed: bool,
    #[serde(skip)]
    pub(crate) gates: Vec<Gate>,
}

/// A KPI's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiResult {
    pub kpi: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub definition: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: Option<Period>,
    pub k: u32,
    /// Names of `Row::keys`: fixed keys, strata, labels.
    pub key_columns: Vec<String>,
    /// How many of the key columns are strata (after the fixed keys).
    pub strata: usize,
    /// Names of `Row::values`; `value` is the headline measure.
    pub measures: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub suppressed: usize,
    /// Period labels the window covers only in part (`(label, days covered, days in the
    /// period)`), e.g. the quarter the snapshot date falls in. Their rows are published, but
    /// charts leave them out and trends are fitted without them: a rate over a few days is not
    /// comparable with a full period's.
    pub partial: Vec<(String, i64, i64)>,
    pub sql: String,
}

impl KpiResult {
    pub fn measure(&self, name: &str) -> Option<usize> {
        self.measures.iter().position(|m| *m == name)
    }
}

/// The snapshot's tables registered for SQL (lazy scans: only the columns and partitions a
/// query touches are read).
pub fn context(snapshot: &Snapshot) -> Result<SQLContext> {
    let ctx = SQLContext::new();
    for t in TABLES {
        ctx.register(t, snapshot.scan(t)?);
    }
    Ok(ctx)
}

/// Runs SQL over the snapshot on polars' streaming engine.
pub fn query(ctx: &mut SQLContext, sql: &str) -> Result<DataFrame> {
    let lf = ctx.execute(sql)?;
    match lf.collect_with_engine(Engine::Streaming)? {
        polars_core::query_result::QueryResult::Single(df) => Ok(df),
        polars_core::query_result::QueryResult::Multiple(mut dfs) => Ok(dfs.pop().unwrap_or_default()),
    }
}

/// Runs one KPI over a snapshot.
pub fn run(snapshot: &Snapshot, def: &KpiDef, q: &Query) -> Result<KpiResult> {
    let mut ctx = context(snapshot)?;
    run_in(&mut ctx, default_end(snapshot, def), def, q)
}

/// Where a KPI's window ends by default: the snapshot's reference date, except for model
/// monitoring, whose prediction sets and verdicts are dated when they were made (up to the
/// snapshot's creation).
pub fn default_end(snapshot: &Snapshot, def: &KpiDef) -> NaiveDate {
    let as_of = snapshot.manifest.as_of;
    if def.topic == "models" { snapshot.manifest.created_on().unwrap_or(as_of).max(as_of) } else { as_of }
}

/// Runs one KPI in a prepared SQL context (the benchmark reuses one for the catalogue).
pub fn run_in(ctx: &mut SQLContext, as_of: NaiveDate, def: &KpiDef, q: &Query) -> Result<KpiResult> {
    if q.k == 0 {
        return Err(AnalyticsError::Invalid("k must be at least 1".into()));
    }
    let w = def.window(q, as_of)?;
    let sql = (def.sql)(&w);
    let df = query(ctx, &sql)?;
    let frame = Frame::new(&df)?;
    let strata: Vec<String> = w.by.iter().map(|s| s.0.to_owned()).collect();
    let has_period = strata.iter().any(|s| s == "period");
    let mut result = KpiResult {
        kpi: def.name,
        title: def.title,
        unit: def.unit,
        definition: def.definition,
        from: w.from,
        to: w.to,
        period: has_period.then_some(w.period),
        k: q.k,
        key_columns: def.keys.iter().map(|k| k.to_string()).chain(strata.iter().cloned()).collect(),
        strata: strata.len(),
        measures: vec![],
        rows: vec![],
        suppressed: 0,
        partial: if has_period { w.period.partial(w.from, w.to) } else { vec![] },
        sql,
    };
    let mut key_cols: Vec<&str> = def.keys.iter().copied().chain(strata.iter().map(String::as_str)).collect();
    if def.kind == Kind::Standardised {
        key_cols.push("age_band");
    }
    let keys = frame.keys(&key_cols, has_period.then_some(w.period))?;
    let k = f64::from(q.k);
    match def.kind {
        Kind::Proportion => {
            result.measures = vec!["value", "ci_low", "ci_high", "numerator", "denominator"];
            for (i, keys) in keys.into_iter().enumerate() {
                let (x, n) = (frame.num("numerator", i), frame.num("denominator", i));
                let ci = wilson(x, n);
                result.rows.push(Row {
                    keys,
                    values: vec![(n > 0.0).then(|| x / n), ci.map(|c| c.0), ci.map(|c| c.1), Some(x), Some(n)],
                    suppressed: false,
                    gates: frame.gates(i),
                });
            }
        }
        Kind::Utilisation => {
            result.measures = vec!["value", "numerator", "denominator"];
            for (i, keys) in keys.into_iter().enumerate() {
                let (x, n) = (frame.num("numerator", i), frame.num("denominator", i));
                result.rows.push(Row {
                    keys,
                    values: vec![(n > 0.0).then(|| x / n), Some(x), Some(n)],
                    suppressed: false,
                    gates: frame.gates(i),
                });
            }
        }
        Kind::Quantiles => {
            result.measures = vec!["value", "p90", "mean", "denominator"];
            for (i, keys) in keys.into_iter().enumerate() {
                result.rows.push(Row {
                    keys,
                    values: vec![
                        frame.opt("median", i),
                        frame.opt("p90", i),
                        frame.opt("mean", i),
                        Some(frame.num("denominator", i)),
                    ],
                    suppressed: false,
                    gates: frame.gates(i),
                });
            }
        }
        Kind::PredictedVsRecorded => {
            result.measures = vec!["value", "ci_low", "ci_high", "recorded", "numerator", "denominator"];
            for (i, keys) in keys.into_iter().enumerate() {
                let (x, n, r) = (frame.num("numerator", i), frame.num("denominator", i), frame.num("recorded", i));
                let ci = wilson(x, n);
                let mut gates = frame.gates(i);
                gates.push(Gate { count: r, zero_ok: true });
                result.rows.push(Row {
                    keys,
                    values: vec![
                        (n > 0.0).then(|| x / n),
                        ci.map(|c| c.0),
                        ci.map(|c| c.1),
                        (n > 0.0).then(|| r / n),
                        Some(x),
                        Some(n),
                    ],
                    suppressed: false,
                    gates,
                });
            }
        }
        Kind::Calibration => {
            result.measures = vec!["value", "mean_predicted", "observed", "numerator", "denominator"];
            for (i, keys) in keys.into_iter().enumerate() {
                // Summed as integer millionths: exact, so identical whatever order rows arrive in.
                let (x, n) = (frame.num("numerator", i), frame.num("denominator", i));
                let m = frame.opt("micro_predicted", i).filter(|_| n > 0.0).map(|s| s / 1e6 / n);
                let observed = (n > 0.0).then(|| x / n);
                result.rows.push(Row {
                    keys,
                    values: vec![observed.zip(m).map(|(o, m)| o - m), m, observed, Some(x), Some(n)],
                    suppressed: false,
                    gates: frame.gates(i),
                });
            }
        }
        Kind::Standardised => standardise(&frame, keys, &mut result)?,
        Kind::Incidence => incidence(&frame, keys, &w, &mut result)?,
    }
    result.rows.sort_by(|a, b| a.keys.cmp(&b.keys));
    let dims: Vec<usize> = (def.keys.len()..def.keys.len() + result.strata).collect();
    result.suppressed = suppress(&mut result.rows, &dims, k);
    if matches!(def.kind, Kind::Incidence | Kind::Calibration) && has_period {
        add_trend(&mut result);
    }
    Ok(result)
}

/// The SQL result with typed accessors.
struct Frame<'a> {
    df: &'a DataFrame,
    cache: BTreeMap<String, Vec<Option<f64>>>,
}

impl<'a> Frame<'a> {
    fn new(df: &'a DataFrame) -> Result<Self> {
        let mut cache = BTreeMap::new();
        for c in df.columns() {
            if c.dtype().is_primitive_numeric() {
                let f = c.cast(&DataType::Float64)?;
                cache.insert(c.name().to_string(), f.f64()?.iter().collect());
            }
        }
        Ok(Self { df, cache })
    }

    fn opt(&self, name: &str, i: usize) -> Option<f64> {
        self.cache.get(name).and_then(|v| v.get(i).copied().flatten())
    }

    fn num(&self, name: &str, i: usize) -> f64 {
        self.opt(name, i).unwrap_or(0.0)
    }

    fn gates(&self, i: usize) -> Vec<Gate> {
        let mut g = vec![Gate { count: self.num("case_persons", i), zero_ok: true }];
        if self.cache.contains_key("persons") {
            g.push(Gate { count: self.num("persons", i), zero_ok: false });
        }
        g
    }

    /// Key cells as text; the period column as its label.
    fn keys(&self, cols: &[&str], period: Option<Period>) -> Result<Vec<Vec<String>>> {
        let mut out = vec![Vec::with_capacity(cols.len()); self.df.height()];
        for name in cols {
            let c = self.df.column(name)?;
            if *name == "period" {
                let p = period.unwrap_or(Period::Quarter);
                let v = c.cast(&DataType::Int64)?;
                for (row, x) in out.iter_mut().zip(v.i64()?.iter()) {
                    row.push(x.map_or_else(|| "unknown".into(), |k| if k == 0 { "before".into() } else { p.label(k) }));
                }
            } else {
                let v = c.cast(&DataType::String)?;
                for (row, x) in out.iter_mut().zip(v.str()?.iter()) {
                    row.push(x.unwrap_or("unknown").to_owned());
                }
            }
        }
        Ok(out)
    }
}

/// Direct standardisation: the SQL result has the age band as its last stratum.
fn standardise(frame: &Frame<'_>, keys: Vec<Vec<String>>, result: &mut KpiResult) -> Result<()> {
    // The age band is the last key: collect the bands per remaining key.
    result.measures = vec!["value", "ci_low", "ci_high", "crude", "numerator", "denominator"];
    let weights: BTreeMap<&str, f64> = ESP2013.iter().copied().collect();
    // Bands keyed by name: SQL returns rows in any order, and summing in a fixed order makes
    // the result identical to the last bit on every run and backend.
    // Per stratum, per band: (ESP weight, numerator, denominator).
    type Bands = BTreeMap<String, (f64, f64, f64)>;
    let mut groups: BTreeMap<Vec<String>, Bands> = BTreeMap::new();
    for (i, mut k) in keys.into_iter().enumerate() {
        let band = k.pop().unwrap_or_default();
        let w = weights.get(band.as_str()).copied().unwrap_or(0.0);
        groups.entry(k).or_default().insert(band, (w, frame.num("numerator", i), frame.num("denominator", i)));
    }
    for (keys, bands) in groups {
        let bands: Vec<(f64, f64, f64)> = bands.into_values().collect();
        let present: Vec<_> = bands.iter().filter(|b| b.2 > 0.0).collect();
        let wsum: f64 = present.iter().map(|b| b.0).sum();
        let (x, n): (f64, f64) = (bands.iter().map(|b| b.1).sum(), bands.iter().map(|b| b.2).sum());
        let (value, var) = if wsum > 0.0 {
            present.iter().fold((0.0, 0.0), |(v, var), b| {
                let (w, p) = (b.0 / wsum, b.1 / b.2);
                (v + w * p, var + w * w * p * (1.0 - p) / b.2)
            })
        } else {
            (f64::NAN, f64::NAN)
        };
        let ok = wsum > 0.0;
        let half = Z95 * var.sqrt();
        result.rows.push(Row {
            keys,
            values: vec![
                ok.then_some(value),
                ok.then(|| (value - half).max(0.0)),
                ok.then(|| (value + half).min(1.0)),
                (n > 0.0).then(|| x / n),
                Some(x),
                Some(n),
            ],
            suppressed: false,
            gates: vec![Gate { count: x, zero_ok: true }, Gate { count: n, zero_ok: false }],
        });
    }
    Ok(())
}

/// New cases per period to rates per 1 000 person-years; the SQL result has the period
/// (0 = before the window) as its last key.
fn incidence(frame: &Frame<'_>, keys: Vec<Vec<String>>, w: &Window, result: &mut KpiResult) -> Result<()> {
    result.measures = vec!["value", "ci_low", "ci_high", "cases", "person_years"];
    let periods = w.period.between(w.from, w.to);
    // Per series (code, chapter, strata without period): population and cases per period label.
    let mut series: BTreeMap<Vec<String>, (f64, BTreeMap<String, f64>)> = BTreeMap::new();
    for (i, mut k) in keys.into_iter().enumerate() {
        let period = k.pop().unwrap_or_default();
        let s = series.entry(k).or_insert_with(|| (frame.num("population", i), BTreeMap::new()));
        *s.1.entry(period).or_default() += frame.num("cases", i);
    }
    for (k, (population, cases)) in series {
        let mut at_risk = population - cases.get("before").copied().unwrap_or(0.0);
        for (_, label, days) in &periods {
            let c = cases.get(label).copied().unwrap_or(0.0);
            let py = (at_risk - c / 2.0).max(0.0) * days / 365.25;
            let (lo, hi) = poisson(c);
            let mut keys = k.clone();
            keys.push(label.clone());
            result.rows.push(Row {
                keys,
                values: vec![
                    (py > 0.0).then(|| 1000.0 * c / py),
                    (py > 0.0).then(|| 1000.0 * lo / py),
                    (py > 0.0).then(|| 1000.0 * hi / py),
                    Some(c),
                    Some(py),
                ],
                suppressed: false,
                gates: vec![Gate { count: c, zero_ok: true }, Gate { count: at_risk, zero_ok: false }],
            });
            at_risk -= c;
        }
    }
    Ok(())
}

/// Appends a `trend` label per series, fitted over its published periods.
fn add_trend(result: &mut KpiResult) {
    let Some(p) = result.key_columns.iter().position(|c| c == "period") else { return };
    // Rows are sorted, so a series' periods come in order; x is the period's position.
    // Per series: (periods seen, (x, value) of the published ones).
    type Points = (usize, Vec<(f64, f64)>);
    let mut points: BTreeMap<Vec<String>, Points> = BTreeMap::new();
    for r in &result.rows {
        if result.partial.iter().any(|(label, _, _)| *label == r.keys[p]) {
            continue;
        }
        let mut k = r.keys.clone();
        k.remove(p);
        let (n, pts) = points.entry(k).or_default();
        if let (false, Some(v)) = (r.suppressed, r.values[0]) {
            pts.push((*n as f64, v));
        }
        *n += 1;
    }
    for r in &mut result.rows {
        let mut k = r.keys.clone();
        k.remove(p);
        let t = points.get(&k).and_then(|(_, pts)| trend(pts));
        r.keys.push(t.map_or("n/a", |t| t.direction.as_str()).to_owned());
    }
    result.key_columns.push("trend".into());
}

/// The catalogue as Markdown: every KPI's definition, strata, default window and the SQL it
/// runs (for a snapshot taken on `as_of`). `KPIS.md` beside this crate is this text.
pub fn catalogue_markdown(as_of: NaiveDate) -> String {
    let mut out = String::from(
        "# The KPI catalogue\n\n\
         Generated from `crates/carelens-analytics/src/kpi.rs` (`CARELENS_BLESS=1 cargo test -p carelens-analytics` \
         rewrites it; a test fails when it is out of date). Every KPI is one SQL query over the snapshot tables, \
         run by polars SQL on the streaming engine; Rust adds rates, 95 % intervals, person-years, age \
         standardisation, trends and small-cell suppression.\n\n\
         **Suppression.** A cell is suppressed when any of its person counts (numerator persons, denominator \
         persons) is below k (default 11; numerators of 0 are published). Then, in every group of cells that differ \
         in one stratum only, a lone suppressed cell is joined by the published cell with the fewest persons, until \
         no group has exactly one (complementary suppression). Suppressed cells keep their keys, lose every measure \
         and are marked `suppressed` in every format.\n\n\
         **Windows.** `--to` defaults to the snapshot's date (model-monitoring KPIs: the day the snapshot was \
         written, since prediction sets and verdicts are dated when made); `--from` defaults to the KPI's window \
         length before it. SQL below is for the default window of a snapshot taken on ",
    );
    out.push_str(&format!("{as_of}.\n"));
    for def in CATALOGUE {
        out.push_str(&format!("\n## `{}`: {}\n\n", def.name, def.title));
        out.push_str(&format!("{}\n\n", def.definition.split_whitespace().collect::<Vec<_>>().join(" ")));
        out.push_str(&format!("- unit: {}\n", def.unit));
        out.push_str(&format!("- strata (`--by`): {}\n", def.allowed().join(", ")));
        if !def.default_by.is_empty() {
            out.push_str(&format!("- default strata: {}\n", def.default_by.join(", ")));
        }
        out.push_str(&format!("- default window: {} days\n", def.window_days));
        if def.name == "vaccination_coverage" {
            out.push_str(
                "\n| schedule entry | vaccine (ATC) | doses | counted | cohort (age) |\n|---|---|---|---|---|\n",
            );
            for s in SCHEDULE {
                let rule = match s.rule {
                    DoseRule::BeforeAge(a) => format!("given before age {a}"),
                    DoseRule::Within(d) => format!("within {d} days"),
                    DoseRule::Ever => "ever".into(),
                };
                let hi = if s.cohort.1 >= 200 { "".into() } else { s.cohort.1.to_string() };
                out.push_str(&format!("| {} | {} | {} | {rule} | {}–{hi} |\n", s.key, s.atc, s.doses, s.cohort.0));
            }
        }
        let sql = def.sql(&Query::default(), as_of).unwrap_or_default();
        out.push_str(&format!("\n```sql\n{sql}\n```\n"));
    }
    out
}
