//! `carelens stats`: what the store holds, as counts and small bar charts.

use std::collections::BTreeMap;

use anyhow::Result;
use carelens_domain::{Condition, Patient};
use carelens_store::{PageRequest, StoreCounts};
use chrono::NaiveDate;
use serde::Serialize;

use super::generate::{PopulationMeta, population};
use crate::cli::{PatientsArgs, StatsArgs};
use crate::context::Context;
use crate::output::{self, thousands};

#[derive(Debug, Serialize)]
pub struct ConditionRow {
    pub condition: &'static str,
    pub icd10: String,
    pub patients: u64,
    /// Share of all patients, percent.
    pub percent: f64,
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub data_dir: String,
    pub backend: &'static str,
    /// The store's URL (credentials removed).
    pub store: String,
    pub objects: String,
    pub as_of: NaiveDate,
    pub population: Option<PopulationMeta>,
    pub counts: StoreCounts,
    pub conditions: Vec<ConditionRow>,
    pub age_bands: BTreeMap<String, u64>,
    pub sex: BTreeMap<String, u64>,
    pub insurance: BTreeMap<String, u64>,
    pub regions: BTreeMap<String, u64>,
    /// No-shows among appointments that were due (completed + no-show), percent.
    pub no_show_percent: Option<f64>,
}

pub const AGE_BANDS: [(u32, u32, &str); 6] =
    [(0, 17, "0-17"), (18, 39, "18-39"), (40, 59, "40-59"), (60, 69, "60-69"), (70, 79, "70-79"), (80, 200, "80+")];

fn age_band(age: u32) -> &'static str {
    AGE_BANDS.iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&age)).map_or("80+", |b| b.2)
}

pub fn collect(ctx: &Context, as_of: Option<NaiveDate>) -> Result<StatsReport> {
    let population = population(ctx)?;
    let as_of = as_of.or(population.as_ref().map(|p| p.as_of)).unwrap_or_else(|| chrono::Utc::now().date_naive());
    let counts = ctx.runtime.block_on(ctx.store.counts())?;
    let (mut age_bands, mut sex, mut insurance, mut regions) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (_, _, label) in AGE_BANDS {
        age_bands.insert(label.to_owned(), 0);
    }
    let mut page = Some(PageRequest::first(5000));
    while let Some(req) = page {
        let got = ctx.runtime.block_on(ctx.store.list_patients(req))?;
        for p in &got.items {
            let p: &Patient = p;
            *age_bands.entry(age_band(p.age_on(as_of)).to_owned()).or_insert(0) += 1;
            *sex.entry(p.sex.as_str().to_owned()).or_insert(0) += 1;
            *insurance.entry(p.insurance.kind.as_str().to_owned()).or_insert(0) += 1;
            *regions.entry(p.residence.region.clone()).or_insert(0) += 1;
        }
        page = got.next;
    }
    let n = counts.patients.max(1) as f64;
    let conditions = Condition::ALL
        .iter()
        .map(|c| {
            let patients = counts.ground_truth_by_condition.get(c.as_str()).copied().unwrap_or(0);
            ConditionRow {
                condition: c.as_str(),
                icd10: c.icd10().to_string(),
                patients,
                percent: (patients as f64 / n * 1000.0).round() / 10.0,
            }
        })
        .collect();
    let status = |s: &str| counts.appointments_by_status.get(s).copied().unwrap_or(0);
    let due = status("completed") + status("no_show");
    let no_show_percent = (due > 0).then(|| (status("no_show") as f64 / due as f64 * 1000.0).round() / 10.0);
    Ok(StatsReport {
        data_dir: ctx.data_dir.display().to_string(),
        backend: ctx.store.backend(),
        store: ctx.store_location.clone(),
        objects: ctx.objects_location.clone(),
        as_of,
        population,
        counts,
        conditions,
        age_bands,
        sex,
        insurance,
        regions,
        no_show_percent,
    })
}

fn bar(value: u64, max: u64) -> String {
    let width = if max == 0 { 0 } else { (value as f64 / max as f64 * 30.0).round() as usize };
    "█".repeat(width)
}

fn table<'a>(title: &str, rows: impl IntoIterator<Item = (&'a str, u64)>, total: u64) {
    let rows: Vec<_> = rows.into_iter().collect();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    outln!("\n{title}");
    for (label, v) in rows {
        let pct = if total > 0 { v as f64 / total as f64 * 100.0 } else { 0.0 };
        outln!("  {label:<30} {:>10} {pct:>5.1}%  {}", thousands(v), bar(v, max));
    }
}

pub fn print_human(r: &StatsReport) {
    let c = &r.counts;
    outln!("carelens store {} ({}), objects {}", r.store, r.backend, r.objects);
    if c.patients == 0 {
        outln!("\nThe store is empty. Run `carelens demo` or `carelens generate --patients 10000` first.");
        return;
    }
    if let Some(p) = &r.population {
        let state = if p.complete { "" } else { " (incomplete: rerun the same generate command to finish)" };
        outln!("population: seed {}, {} patients, as of {}{state}", p.seed, thousands(p.patients), p.as_of);
    }
    outln!(
        "{} patients, {} providers, {} history entries, {} appointments, {} reviews",
        thousands(c.patients),
        thousands(c.providers),
        thousands(c.history_entries),
        thousands(c.appointments),
        thousands(c.reviews)
    );
    let conditions: Vec<(String, u64)> =
        r.conditions.iter().map(|x| (format!("{} ({})", x.condition, x.icd10), x.patients)).collect();
    table("Conditions (ground truth, patients)", conditions.iter().map(|(l, v)| (l.as_str(), *v)), c.patients);
    table(&format!("Age bands (as of {})", r.as_of), r.age_bands.iter().map(|(k, v)| (k.as_str(), *v)), c.patients);
    table("Sex", r.sex.iter().map(|(k, v)| (k.as_str(), *v)), c.patients);
    table("Insurance", r.insurance.iter().map(|(k, v)| (k.as_str(), *v)), c.patients);
    table("Regions", r.regions.iter().map(|(k, v)| (k.as_str(), *v)), c.patients);
    table("History entries", c.history_by_category.iter().map(|(k, v)| (k.as_str(), *v)), c.history_entries);
    table("Appointments", c.appointments_by_status.iter().map(|(k, v)| (k.as_str(), *v)), c.appointments);
    if let Some(ns) = r.no_show_percent {
        outln!("\nno-show rate among due appointments: {ns:.1}%");
    }
}

pub fn run(ctx: &Context, args: &StatsArgs) -> Result<()> {
    let report = collect(ctx, args.as_of)?;
    if ctx.json {
        output::json(&report)
    } else {
        print_human(&report);
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct PatientRow {
    id: String,
    age_band: &'static str,
    sex: &'static str,
    region: String,
    insurance: &'static str,
}

/// `carelens patients`: Health IDs with coarse attributes only.
pub fn patients(ctx: &Context, args: &PatientsArgs) -> Result<()> {
    let page = PageRequest { after: args.after.clone(), limit: args.limit };
    let today = chrono::Utc::now().date_naive();
    let items = ctx.runtime.block_on(ctx.store.list_patients(page))?.items;
    let rows: Vec<PatientRow> = items
        .iter()
        .map(|p| PatientRow {
            id: p.id.to_string(),
            age_band: age_band(p.age_on(today)),
            sex: p.sex.as_str(),
            region: p.residence.region.clone(),
            insurance: p.insurance.kind.as_str(),
        })
        .collect();
    if ctx.json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        outln!("No patients. Run `carelens demo` or `carelens generate`.");
        return Ok(());
    }
    for r in &rows {
        outln!("{}  {:<6} {:<7} {:<24} {}", r.id, r.age_band, r.sex, r.region, r.insurance);
    }
    if rows.len() == args.limit as usize {
        outln!("(more: --after {})", rows[rows.len() - 1].id);
    }
    Ok(())
}
