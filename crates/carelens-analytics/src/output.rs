//! A KPI result as a table for the terminal, CSV, JSON or Parquet. Every format keeps
//! suppressed cells, marked as such (`suppressed` = true, measures empty/null).

use std::path::Path;

use polars::prelude::*;
use serde_json::{Map, Value, json};

use crate::error::{Result, file_error};
use crate::kpi::KpiResult;

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// CSV with a header; suppressed cells have empty measures and `suppressed` = `true`.
pub fn to_csv(r: &KpiResult) -> String {
    let mut out = String::new();
    let header: Vec<String> = r
        .key_columns
        .iter()
        .cloned()
        .chain(r.measures.iter().map(|m| m.to_string()))
        .chain(["suppressed".to_owned()])
        .collect();
    out.push_str(&header.iter().map(|h| csv_cell(h)).collect::<Vec<_>>().join(","));
    out.push('\n');
    for row in &r.rows {
        let cells: Vec<String> = row
            .keys
            .iter()
            .map(|k| csv_cell(k))
            .chain(row.values.iter().map(|v| v.map(fmt_num).unwrap_or_default()))
            .chain([row.suppressed.to_string()])
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// One JSON document: the definition, the window, k and the rows as objects.
pub fn to_json(r: &KpiResult) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let mut o = Map::new();
            for (k, v) in r.key_columns.iter().zip(&row.keys) {
                o.insert(k.clone(), Value::String(v.clone()));
            }
            for (m, v) in r.measures.iter().zip(&row.values) {
                o.insert((*m).to_owned(), v.map_or(Value::Null, |x| json!(x)));
            }
            o.insert("suppressed".into(), Value::Bool(row.suppressed));
            Value::Object(o)
        })
        .collect();
    json!({
        "kpi": r.kpi,
        "title": r.title,
        "unit": r.unit,
        "definition": r.definition,
        "from": r.from,
        "to": r.to,
        "period": r.period,
        "k": r.k,
        "key_columns": r.key_columns,
        "measures": r.measures,
        "suppressed_cells": r.suppressed,
        "partial_periods": r.partial.iter().map(|(label, covered, full)| json!({"period": label, "days": covered, "of_days": full})).collect::<Vec<_>>(),
        "rows": rows,
        "sql": r.sql,
    })
}

/// The result as a DataFrame: key columns as text, measures as nullable floats, `suppressed`.
pub fn to_frame(r: &KpiResult) -> Result<DataFrame> {
    let mut cols = Vec::new();
    for (i, k) in r.key_columns.iter().enumerate() {
        let v: Vec<&str> = r.rows.iter().map(|row| row.keys[i].as_str()).collect();
        cols.push(Column::new(k.as_str().into(), v));
    }
    for (i, m) in r.measures.iter().enumerate() {
        let v: Vec<Option<f64>> = r.rows.iter().map(|row| row.values[i]).collect();
        cols.push(Column::new((*m).into(), v));
    }
    cols.push(Column::new("suppressed".into(), r.rows.iter().map(|row| row.suppressed).collect::<Vec<_>>()));
    Ok(DataFrame::new_infer_height(cols)?)
}

pub fn write_parquet(r: &KpiResult, path: &Path) -> Result<()> {
    let mut df = to_frame(r)?;
    let f = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
    ParquetWriter::new(f).finish(&mut df).map_err(|e| file_error(path, e))?;
    Ok(())
}

/// Aligned text for a terminal: proportions as percentages, suppressed cells as `suppressed`.
pub fn to_table(r: &KpiResult) -> String {
    let percent = r.unit.starts_with("proportion") || r.unit.starts_with("booked share");
    let shown = |m: &str, v: f64| -> String {
        if percent && matches!(m, "value" | "ci_low" | "ci_high" | "recorded" | "crude") {
            format!("{:.1} %", 100.0 * v)
        } else if matches!(m, "numerator" | "denominator" | "cases") {
            fmt_num(v)
        } else {
            format!("{v:.2}")
        }
    };
    let header: Vec<String> = r.key_columns.iter().cloned().chain(r.measures.iter().map(|m| m.to_string())).collect();
    let mut lines: Vec<Vec<String>> = vec![header];
    for row in &r.rows {
        let mut cells = row.keys.clone();
        if row.suppressed {
            cells.push("suppressed".into());
            cells.extend(std::iter::repeat_n(String::new(), r.measures.len() - 1));
        } else {
            cells.extend(r.measures.iter().zip(&row.values).map(|(m, v)| v.map_or("–".into(), |x| shown(m, x))));
        }
        lines.push(cells);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| lines.iter().map(|l| l.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = widths[c].saturating_sub(s.chars().count());
                if c < r.key_columns.len() {
                    format!("{s}{}", " ".repeat(pad))
                } else {
                    format!("{}{s}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for (label, covered, full) in &r.partial {
        out.push_str(&format!("{label} is partial: the window covers {covered} of its {full} days\n"));
    }
    out
}
