//! SVG charts of KPI results (plotters; no fonts or native libraries): a line per series over
//! periods for time strata, horizontal bars with 95 % intervals otherwise. Suppressed cells
//! are drawn as labelled gaps, never as zero.

use plotters::prelude::*;

use crate::kpi::KpiResult;

/// At most this many lines or bars; the rest is in the table and the CSV.
pub const MAX_SERIES: usize = 8;
pub const MAX_BARS: usize = 30;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn label_of(r: &KpiResult, keys: &[String], skip: &[&str]) -> String {
    let parts: Vec<&str> =
        r.key_columns.iter().zip(keys).filter(|(c, _)| !skip.contains(&c.as_str())).map(|(_, k)| k.as_str()).collect();
    if parts.is_empty() { "all".into() } else { parts.join(" · ") }
}

/// The chart for `r` as SVG text.
pub fn svg(r: &KpiResult) -> String {
    let mut text = String::new();
    {
        let rows = r.rows.len().clamp(1, MAX_BARS);
        let height = if r.period.is_some() { 420 } else { (90 + 22 * rows) as u32 };
        let area = SVGBackend::with_string(&mut text, (760, height.max(220))).into_drawing_area();
        let drawn = area
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| if r.period.is_some() { lines(r, &area) } else { bars(r, &area) });
        if let Err(e) = drawn.and_then(|()| area.present().map_err(|e| e.to_string())) {
            tracing::warn!("chart not drawn: {e}");
        }
    }
    text
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn is_percent(r: &KpiResult) -> bool {
    r.unit.starts_with("proportion") || r.unit.starts_with("booked share")
}

fn lines(r: &KpiResult, area: &Area<'_>) -> Result<(), String> {
    let p = r.key_columns.iter().position(|c| c == "period").unwrap_or(0);
    // A period the window covers only in part is not drawn as if it were a whole one.
    let partial = |label: &str| r.partial.iter().any(|(l, _, _)| l == label);
    let mut periods: Vec<String> =
        r.rows.iter().map(|row| row.keys[p].clone()).filter(|label| !partial(label)).collect();
    periods.sort();
    periods.dedup();
    // One line per series name: (period index, value or a gap).
    type Series = (String, Vec<(usize, Option<f64>)>);
    let mut series: Vec<Series> = Vec::new();
    for row in r.rows.iter().filter(|row| !partial(&row.keys[p])) {
        let name = label_of(r, &row.keys, &["period"]);
        let x = periods.iter().position(|q| *q == row.keys[p]).unwrap_or(0);
        let v = if row.suppressed { None } else { row.values[0] };
        match series.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1.push((x, v)),
            None => series.push((name, vec![(x, v)])),
        }
    }
    let total = series.len();
    series.truncate(MAX_SERIES);
    let scale = if is_percent(r) { 100.0 } else { 1.0 };
    let values = series.iter().flat_map(|s| s.1.iter().filter_map(|p| p.1)).map(|v| v * scale);
    let (lo, hi) = values.fold((0f64, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let hi = if hi <= lo { lo + 1.0 } else { hi + (hi - lo) * 0.1 };
    let mut caption = if total > MAX_SERIES {
        format!("{} (first {MAX_SERIES} of {total} series)", r.title)
    } else {
        r.title.to_owned()
    };
    if let Some((label, covered, full)) = r.partial.last() {
        caption.push_str(&format!(" — {label} not shown ({covered} of {full} days)"));
    }
    let n = periods.len().max(2);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..(n - 1) as f64, lo..hi)
        .map_err(|e| e.to_string())?;
    let unit = if is_percent(r) { format!("{} (%)", r.unit) } else { r.unit.to_owned() };
    chart
        .configure_mesh()
        .x_labels(n.min(12))
        .x_label_formatter(&|x| periods.get(x.round() as usize).cloned().unwrap_or_default())
        .y_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // Split at suppressed periods so a gap shows instead of a line through it.
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut segments = Vec::new();
        for (x, v) in pts {
            match v {
                Some(v) => segment.push((*x as f64, v * scale)),
                None => segments.push(std::mem::take(&mut segment)),
            }
        }
        segments.push(segment);
        let mut first = true;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let drawn =
                chart.draw_series(LineSeries::new(seg.clone(), colour.stroke_width(2))).map_err(|e| e.to_string())?;
            if first {
                drawn
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
                first = false;
            }
            chart
                .draw_series(seg.iter().map(|&(x, y)| Circle::new((x, y), 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn bars(r: &KpiResult, area: &Area<'_>) -> Result<(), String> {
    let rows: Vec<_> = r.rows.iter().take(MAX_BARS).collect();
    let scale = if is_percent(r) { 100.0 } else { 1.0 };
    let (lo_i, hi_i) = (r.measure("ci_low"), r.measure("ci_high"));
    let hi = rows
        .iter()
        .filter(|row| !row.suppressed)
        .flat_map(|row| [row.values[0], hi_i.and_then(|i| row.values[i])])
        .flatten()
        .fold(0f64, f64::max)
        * scale;
    let hi = if hi <= 0.0 { 1.0 } else { hi * 1.1 };
    // Proportions end at 100 %.
    let hi = if is_percent(r) { hi.min(100.0) } else { hi };
    let lo = rows.iter().filter_map(|row| row.values[0]).fold(0f64, f64::min) * scale;
    let labels: Vec<String> = rows.iter().map(|row| label_of(r, &row.keys, &["trend"])).collect();
    let caption = if r.rows.len() > MAX_BARS {
        format!("{} (first {MAX_BARS} of {} cells)", r.title, r.rows.len())
    } else {
        r.title.to_owned()
    };
    let n = rows.len().max(1) as f64;
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 7 + 10;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(label_width)
        .build_cartesian_2d(lo..hi, 0f64..n)
        .map_err(|e| e.to_string())?;
    let unit = if is_percent(r) { format!("{} (%)", r.unit) } else { r.unit.to_owned() };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (n - y - 0.5).round();
            if (n - y - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, row) in rows.iter().enumerate() {
        let y = n - i as f64 - 1.0;
        if row.suppressed {
            chart
                .draw_series([Text::new(
                    "suppressed (fewer than k persons)",
                    (lo, y + 0.35),
                    ("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
                )])
                .map_err(|e| e.to_string())?;
            continue;
        }
        let Some(v) = row.values[0] else { continue };
        chart
            .draw_series([Rectangle::new([(0.0, y + 0.15), (v * scale, y + 0.85)], PALETTE[0].mix(0.8).filled())])
            .map_err(|e| e.to_string())?;
        if let (Some(a), Some(b)) = (lo_i.and_then(|i| row.values[i]), hi_i.and_then(|i| row.values[i])) {
            chart
                .draw_series([PathElement::new(
                    vec![(a * scale, y + 0.5), (b * scale, y + 0.5)],
                    BLACK.stroke_width(1),
                )])
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
