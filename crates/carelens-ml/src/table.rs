//! Tabular data from a user's CSV with a binary `--target` column. Messy real columns are
//! reported per column instead of crashing: missing markers (`?`, `NA`, empty, …), text in a
//! mostly numeric column (counted as missing), zeros that probably mean "not measured",
//! constant columns. Reports name columns and line numbers, never cell values (a CSV may hold
//! names or dates of birth).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::MlError;

/// Cells read as missing.
pub const MISSING: [&str; 10] = ["", "?", "NA", "N/A", "na", "NaN", "nan", "null", "NULL", "-"];

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Numeric(Vec<Option<f64>>),
    Categorical(Vec<Option<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// Features plus a binary target (`true` = the positive class).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub target: Vec<bool>,
    pub target_name: String,
    /// The class read as positive (`true`), and the other one.
    pub positive_class: String,
    pub negative_class: String,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.target.len()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    pub missing: usize,
    /// Text in a numeric column, read as missing.
    pub non_numeric: usize,
    /// 1-based CSV line of the first such cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_non_numeric_line: Option<u64>,
    pub zeros: usize,
    /// Something to look at, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn is_missing(s: &str) -> bool {
    MISSING.contains(&s.trim())
}

/// Reads `path` with a header row; `target` names the binary label column. The positive class
/// is `positive` when given, else the lexicographically greater of `1`/`true`/`yes`-style
/// pairs or, failing that, the less frequent class.
pub fn read_csv(path: &Path, target: &str, positive: Option<&str>) -> Result<(Table, Vec<ColumnReport>), MlError> {
    let err = |m: String| MlError::Input(format!("{}: {m}", path.display()));
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_path(path)
        .map_err(|e| err(format!("cannot open: {e}")))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| err(format!("cannot read the header: {e}")))?.iter().map(str::to_owned).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| err(e.to_string()))?;
        lines.push(record.position().map_or(0, csv::Position::line));
        for (i, c) in record.iter().enumerate() {
            cells[i].push(c.to_owned());
        }
    }
    table_from_cells(&path.display().to_string(), &headers, cells, &lines, target, positive)
}

/// Builds a [`Table`] from text cells, one `Vec` per column (`""` or a [`MISSING`] marker for
/// a missing cell), with the same per-column checks as [`read_csv`]. `lines[r]` is row `r`'s
/// 1-based line (or row number) in `source`, for reports.
pub fn table_from_cells(
    source: &str,
    headers: &[String],
    cells: Vec<Vec<String>>,
    lines: &[u64],
    target: &str,
    positive: Option<&str>,
) -> Result<(Table, Vec<ColumnReport>), MlError> {
    let err = |m: String| MlError::Input(format!("{source}: {m}"));
    if cells.len() != headers.len() || cells.iter().any(|c| c.len() != lines.len()) {
        return Err(err(format!(
            "{} headers but {} columns, or columns of unequal length",
            headers.len(),
            cells.len()
        )));
    }
    let Some(target_index) = headers.iter().position(|h| h == target) else {
        let shown: Vec<&str> = headers.iter().take(12).map(String::as_str).collect();
        return Err(err(format!(
            "no column `{target}` for --target; columns are: {}{}",
            shown.join(", "),
            if headers.len() > 12 { ", …" } else { "" }
        )));
    };
    // Target: rows without one are dropped (and counted).
    let raw_target = &cells[target_index];
    let keep: Vec<bool> = raw_target.iter().map(|t| !is_missing(t)).collect();
    let mut classes: Vec<(String, usize)> = Vec::new();
    for t in raw_target.iter().filter(|t| !is_missing(t)) {
        match classes.iter_mut().find(|(c, _)| c == t) {
            Some((_, n)) => *n += 1,
            None => classes.push((t.clone(), 1)),
        }
    }
    if classes.len() > 2 {
        let names: Vec<&str> = classes.iter().take(6).map(|(c, _)| c.as_str()).collect();
        return Err(err(format!(
            "target `{target}` has {} classes ({}…); binary targets only",
            classes.len(),
            names.join(", ")
        )));
    }
    if classes.len() < 2 {
        let n = classes.first().map_or(0, |c| c.1);
        return Err(MlError::SingleClass { positives: n, negatives: 0 });
    }
    let positive_class = match positive {
        Some(p) if classes.iter().any(|(c, _)| c == p) => p.to_owned(),
        Some(p) => return Err(err(format!("--positive {p:?} is not a class of `{target}`"))),
        None => {
            let truthy = ["1", "true", "yes", "y", "positive", "malignant"];
            classes
                .iter()
                .find(|(c, _)| truthy.contains(&c.to_ascii_lowercase().as_str()))
                .or_else(|| classes.iter().min_by_key(|(_, n)| *n))
                .map(|(c, _)| c.clone())
                .unwrap_or_default()
        }
    };
    let negative_class = classes.iter().map(|(c, _)| c.clone()).find(|c| *c != positive_class).unwrap_or_default();
    let target_values: Vec<bool> =
        raw_target.iter().zip(&keep).filter(|(_, k)| **k).map(|(t, _)| *t == positive_class).collect();
    let dropped = keep.iter().filter(|k| !**k).count();

    let mut columns = Vec::new();
    let mut reports = Vec::new();
    for (i, name) in headers.iter().enumerate() {
        if i == target_index {
            continue;
        }
        let values: Vec<(&String, u64)> =
            cells[i].iter().zip(lines).zip(&keep).filter(|(_, k)| **k).map(|((v, l), _)| (v, *l)).collect();
        let present: Vec<&(&String, u64)> = values.iter().filter(|(v, _)| !is_missing(v)).collect();
        let parsed = present.iter().filter(|(v, _)| v.parse::<f64>().is_ok_and(f64::is_finite)).count();
        // Numeric when at least three quarters of the present cells are numbers.
        let numeric = !present.is_empty() && parsed * 4 >= present.len() * 3;
        let mut report = ColumnReport {
            column: name.clone(),
            kind: if numeric { "numeric" } else { "categorical" }.into(),
            missing: values.len() - present.len(),
            non_numeric: 0,
            first_non_numeric_line: None,
            zeros: 0,
            warnings: Vec::new(),
        };
        let data = if numeric {
            let mut out = Vec::with_capacity(values.len());
            for (v, line) in &values {
                if is_missing(v) {
                    out.push(None);
                    continue;
                }
                match v.parse::<f64>().ok().filter(|x| x.is_finite()) {
                    Some(x) => {
                        report.zeros += usize::from(x == 0.0);
                        out.push(Some(x));
                    }
                    None => {
                        report.non_numeric += 1;
                        report.first_non_numeric_line.get_or_insert(*line);
                        out.push(None);
                    }
                }
            }
            let mut nonzero: Vec<f64> = out.iter().flatten().copied().filter(|&x| x != 0.0).collect();
            nonzero.sort_by(f64::total_cmp);
            if report.non_numeric > 0 {
                report.warnings.push(format!(
                    "{} non-numeric cells (first on line {}) read as missing",
                    report.non_numeric,
                    report.first_non_numeric_line.unwrap_or(0)
                ));
            }
            if let (Some(&min), Some(&median)) = (nonzero.first(), nonzero.get(nonzero.len() / 2))
                && report.zeros > 0
                && min > 0.0
                && min >= 0.2 * median
            {
                report.warnings.push(format!(
                    "{} zeros although every other value is at least {min}: if 0 means \"not measured\" here, mark those cells missing",
                    report.zeros
                ));
            }
            if nonzero.first() == nonzero.last() && report.zeros == 0 {
                report.warnings.push("constant: carries no information".into());
            }
            ColumnData::Numeric(out)
        } else {
            if parsed > 0 {
                report
                    .warnings
                    .push(format!("mostly text but {parsed} cells are numbers: read as a category, not a number"));
            }
            ColumnData::Categorical(
                values.iter().map(|(v, _)| if is_missing(v) { None } else { Some((*v).clone()) }).collect(),
            )
        };
        if report.missing > 0 {
            report.warnings.push(format!("{} missing cells", report.missing));
        }
        reports.push(report);
        columns.push(Column { name: name.clone(), data });
    }
    if dropped > 0 {
        reports.push(ColumnReport {
            column: target.into(),
            kind: "target".into(),
            missing: dropped,
            non_numeric: 0,
            first_non_numeric_line: None,
            zeros: 0,
            warnings: vec![format!("{dropped} rows without a target value dropped")],
        });
    }
    Ok((Table { columns, target: target_values, target_name: target.into(), positive_class, negative_class }, reports))
}
