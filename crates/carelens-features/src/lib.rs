//! Feature tables with polars.
//!
//! - [`HistoryFeatures`]: one row per patient from their history, for tabular models: age and
//!   sex; per lab test (LOINC) the latest and the mean value; visits (days with any entry) in
//!   the year before `as_of`; medications current on `as_of`; other active diagnoses; and a
//!   `yes`/`no` target column saying whether the patient has a recorded diagnosis in the
//!   target ICD-10 category. The target's own diagnoses are not features.
//!   No identifiers, names or dates are written, and age is in completed years: rows are
//!   anonymous (though rare combinations can still single a patient out; share with care).
//! - [`read_table`]: a user's CSV or Parquet file as a [`carelens_ml::Table`], with the same
//!   per-column reports (missing markers, text in numeric columns, suspicious zeros).
//!
//! Only history up to `as_of` counts. Features describe the whole history, also after the
//! diagnosis (medication for the condition, follow-up labs), so a model on them recognises
//! recorded disease; it does not forecast onset.

use std::path::Path;

use carelens_domain::{ClinicalStatus, HistoryEntry, HistoryKind, Sex};
use carelens_ml::{ColumnData, ColumnReport, FeatureColumn, FeatureSchema, MlError, Table};
use chrono::NaiveDate;
use polars::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error(transparent)]
    Ml(#[from] MlError),
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
}

pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

/// A lab test becomes two columns when at least this share of patients has a result.
pub const MIN_LAB_COVERAGE: f64 = 0.02;

/// The name of the target column [`HistoryFeatures`] writes, e.g. `diagnosis_E11`.
pub fn target_column(icd10_category: &str) -> String {
    format!("diagnosis_{icd10_category}")
}

fn days(d: NaiveDate) -> i32 {
    // Days since 1970-01-01; fits i32 for any date the domain accepts.
    (d - NaiveDate::default()).num_days() as i32
}

/// Accumulates patients' histories, then builds the feature table with polars.
pub struct HistoryFeatures {
    as_of: NaiveDate,
    target: String,
    min_lab_coverage: f64,
    // One row per patient.
    age: Vec<f64>,
    sex: Vec<&'static str>,
    positive: Vec<bool>,
    // Long tables, keyed by the patient's row.
    obs_row: Vec<u32>,
    obs_code: Vec<String>,
    obs_day: Vec<i32>,
    obs_value: Vec<f64>,
    entry_row: Vec<u32>,
    entry_day: Vec<i32>,
    med_row: Vec<u32>,
    dx_row: Vec<u32>,
}

impl HistoryFeatures {
    /// `target` is a three-character ICD-10 category such as `E11` (type 2 diabetes).
    pub fn new(as_of: NaiveDate, target: &str) -> Result<Self> {
        let t = target.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        if b.len() != 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !b[2].is_ascii_alphanumeric() {
            return Err(FeatureError::Input(format!(
                "target {target:?}: give a three-character ICD-10 category such as E11 (type 2 diabetes) or I10"
            )));
        }
        Ok(Self {
            as_of,
            target: t,
            min_lab_coverage: MIN_LAB_COVERAGE,
            age: vec![],
            sex: vec![],
            positive: vec![],
            obs_row: vec![],
            obs_code: vec![],
            obs_day: vec![],
            obs_value: vec![],
            entry_row: vec![],
            entry_day: vec![],
            med_row: vec![],
            dx_row: vec![],
        })
    }

    /// Keeps lab tests that at least this share of the added patients have (default
    /// [`MIN_LAB_COVERAGE`]); 0 keeps every test anyone has, which prediction needs, since a
    /// handful of patients says nothing about which tests are common.
    pub fn lab_coverage(mut self, share: f64) -> Self {
        self.min_lab_coverage = share.clamp(0.0, 1.0);
        self
    }

    /// The target column this table will have, e.g. `diagnosis_E11`.
    pub fn target_column(&self) -> String {
        target_column(&self.target)
    }

    pub fn patients(&self) -> usize {
        self.age.len()
    }

    /// Adds one patient (born on or before `as_of`) with their history entries.
    pub fn add(&mut self, sex: Sex, birth_date: NaiveDate, entries: &[HistoryEntry]) {
        if birth_date > self.as_of {
            return;
        }
        let row = self.age.len() as u32;
        // Completed years only: a fractional age would give the birth date away to the day.
        self.age.push(f64::from(self.as_of.years_since(birth_date).unwrap_or(0)));
        self.sex.push(sex.as_str());
        let mut positive = false;
        for e in entries.iter().filter(|e| e.date <= self.as_of) {
            self.entry_row.push(row);
            self.entry_day.push(days(e.date));
            match &e.kind {
                HistoryKind::Observation(o) => {
                    self.obs_row.push(row);
                    self.obs_code.push(o.code.as_str().to_owned());
                    self.obs_day.push(days(e.date));
                    self.obs_value.push(o.value);
                }
                HistoryKind::Medication(m) | HistoryKind::PsychiatricMedication(m) if m.is_current(self.as_of) => {
                    self.med_row.push(row);
                }
                HistoryKind::Diagnosis(d) if d.code.category() == self.target => positive = true,
                HistoryKind::Diagnosis(d) if d.status == ClinicalStatus::Active => self.dx_row.push(row),
                _ => {}
            }
        }
        self.positive.push(positive);
    }

    /// Adds one patient whose target comes from elsewhere (a doctor's verdict), not from the
    /// recorded diagnoses; `false` when the patient was born after `as_of` and is left out.
    pub fn add_labelled(&mut self, sex: Sex, birth_date: NaiveDate, entries: &[HistoryEntry], positive: bool) -> bool {
        let before = self.positive.len();
        self.add(sex, birth_date, entries);
        match self.positive.get_mut(before) {
            Some(p) => {
                *p = positive;
                true
            }
            None => false,
        }
    }

    /// The feature table: `age`, `sex`, `visits_365d`, `active_medications`,
    /// `other_active_diagnoses`, `lab_<LOINC>_latest` / `lab_<LOINC>_mean` for tests that at
    /// least [`MIN_LAB_COVERAGE`] of patients have, and the target column (`yes`/`no`).
    pub fn finish(self) -> Result<DataFrame> {
        let n = self.age.len();
        if n == 0 {
            return Err(FeatureError::Input("no patients: generate or import a population first".into()));
        }
        let rows: Vec<u32> = (0..n as u32).collect();
        let target = target_column(&self.target);
        let base = df!(
            "row" => rows,
            "age" => self.age,
            "sex" => self.sex,
            target.as_str() => self.positive.iter().map(|&p| if p { "yes" } else { "no" }).collect::<Vec<_>>(),
        )?
        .lazy();
        let since = days(self.as_of) - 365;
        let visits = df!("row" => self.entry_row, "day" => self.entry_day)?
            .lazy()
            .filter(col("day").gt(lit(since)))
            .group_by([col("row")])
            .agg([col("day").n_unique().cast(DataType::Float64).alias("visits_365d")]);
        let count = |rows: Vec<u32>, name: &str| -> PolarsResult<LazyFrame> {
            Ok(df!("row" => rows)?.lazy().group_by([col("row")]).agg([len().cast(DataType::Float64).alias(name)]))
        };
        let meds = count(self.med_row, "active_medications")?;
        let dx = count(self.dx_row, "other_active_diagnoses")?;
        let labs = df!(
            "row" => self.obs_row,
            "code" => self.obs_code,
            "day" => self.obs_day,
            "value" => self.obs_value,
        )?
        .lazy()
        .group_by([col("row"), col("code")])
        .agg([
            col("value").sort_by([col("day")], SortMultipleOptions::default()).last().alias("latest"),
            col("value").mean().alias("mean"),
        ])
        .collect()?;
        // Lab tests common enough to be a feature, in code order.
        let coverage = labs
            .clone()
            .lazy()
            .group_by([col("code")])
            .agg([len().alias("patients")])
            .filter(col("patients").cast(DataType::Float64).gt_eq(lit(self.min_lab_coverage * n as f64)))
            .sort(["code"], SortMultipleOptions::default())
            .collect()?;
        let codes: Vec<String> = coverage.column("code")?.str()?.iter().flatten().map(str::to_owned).collect();

        let zero_if_none = |c: &str| col(c).fill_null(lit(0.0));
        let mut table = base
            .left_join(visits, col("row"), col("row"))
            .left_join(meds, col("row"), col("row"))
            .left_join(dx, col("row"), col("row"))
            .with_columns([
                zero_if_none("visits_365d"),
                zero_if_none("active_medications"),
                zero_if_none("other_active_diagnoses"),
            ]);
        for code in &codes {
            let one = labs.clone().lazy().filter(col("code").eq(lit(code.as_str()))).select([
                col("row"),
                col("latest").alias(format!("lab_{code}_latest")),
                col("mean").alias(format!("lab_{code}_mean")),
            ]);
            table = table.left_join(one, col("row"), col("row"));
        }
        let mut order = vec![col("age"), col("sex"), col("visits_365d"), col("active_medications")];
        order.push(col("other_active_diagnoses"));
        for code in &codes {
            order.push(col(format!("lab_{code}_latest")));
            order.push(col(format!("lab_{code}_mean")));
        }
        order.push(col(target.as_str()));
        Ok(table.sort(["row"], SortMultipleOptions::default()).select(order).collect()?)
    }
}

/// The columns a fitted model expects, taken from a [`HistoryFeatures`] table by name: a
/// column the table lacks (a lab test none of these patients has) is all missing, which the
/// model imputes as it did in training. The target is not read (all `false`).
pub fn table_for_schema(df: &DataFrame, schema: &FeatureSchema) -> Result<Table> {
    let n = df.height();
    let mut columns = Vec::with_capacity(schema.columns.len());
    for spec in &schema.columns {
        let (name, numeric) = match spec {
            FeatureColumn::Numeric { name, .. } => (name, true),
            FeatureColumn::Categorical { name, .. } => (name, false),
        };
        let data = match df.column(name) {
            Err(_) if numeric => ColumnData::Numeric(vec![None; n]),
            Err(_) => ColumnData::Categorical(vec![None; n]),
            Ok(c) if numeric => {
                let c = c.as_materialized_series().cast(&DataType::Float64)?;
                ColumnData::Numeric(c.f64()?.iter().map(|v| v.filter(|x| x.is_finite())).collect())
            }
            Ok(c) => {
                let c = c.as_materialized_series().cast(&DataType::String)?;
                ColumnData::Categorical(c.str()?.iter().map(|v| v.map(str::to_owned)).collect())
            }
        };
        columns.push(carelens_ml::Column { name: name.clone(), data });
    }
    Ok(Table {
        columns,
        target: vec![false; n],
        target_name: String::new(),
        positive_class: "yes".into(),
        negative_class: "no".into(),
    })
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> FeatureError {
    FeatureError::File { path: path.display().to_string(), detail: e.to_string() }
}

/// Writes `df` as Parquet (`.parquet`) or CSV (anything else); returns the bytes written.
pub fn write_table(df: &mut DataFrame, path: &Path) -> Result<u64> {
    if is_parquet(path) {
        let f = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
        return ParquetWriter::new(f).finish(df).map_err(|e| file_error(path, e));
    }
    let columns: Vec<Vec<String>> = df.columns().iter().map(column_cells).collect::<Result<_>>()?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(df.get_column_names().iter().map(|n| n.as_str())).map_err(|e| file_error(path, e))?;
    for r in 0..df.height() {
        w.write_record(columns.iter().map(|c| c[r].as_str())).map_err(|e| file_error(path, e))?;
    }
    let bytes = w.into_inner().map_err(|e| file_error(path, e))?;
    std::fs::write(path, &bytes).map_err(|e| file_error(path, e))?;
    Ok(bytes.len() as u64)
}

fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

/// A column as text cells (`""` for null); floats in their shortest exact form.
fn column_cells(c: &Column) -> Result<Vec<String>> {
    let c = c.as_materialized_series();
    Ok(match c.dtype() {
        DataType::String => c.str()?.iter().map(|v| v.unwrap_or_default().to_owned()).collect(),
        DataType::Boolean => c.bool()?.iter().map(|v| v.map_or(String::new(), |b| b.to_string())).collect(),
        d if d.is_primitive_numeric() => {
            c.cast(&DataType::Float64)?.f64()?.iter().map(|v| v.map_or(String::new(), |x| x.to_string())).collect()
        }
        other => {
            return Err(FeatureError::Input(format!(
                "column `{}` has type {other}, which carelens does not read; store numbers, text or booleans",
                c.name()
            )));
        }
    })
}

/// Reads a CSV or Parquet file (by extension) as a [`Table`] with a binary `target` column.
pub fn read_table(path: &Path, target: &str, positive: Option<&str>) -> Result<(Table, Vec<ColumnReport>)> {
    if !is_parquet(path) {
        return Ok(carelens_ml::read_csv(path, target, positive)?);
    }
    let f = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    let df =
        ParquetReader::new(f).finish().map_err(|e| file_error(path, format!("not a readable Parquet file ({e})")))?;
    let headers: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let cells: Vec<Vec<String>> =
        df.columns().iter().map(column_cells).collect::<Result<_>>().map_err(|e| file_error(path, e))?;
    // Row numbers stand in for line numbers (1-based, header excluded).
    let lines: Vec<u64> = (1..=df.height() as u64).collect();
    Ok(carelens_ml::table_from_cells(&path.display().to_string(), &headers, cells, &lines, target, positive)?)
}
