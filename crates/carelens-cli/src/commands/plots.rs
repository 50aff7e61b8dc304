//! SVG plots written next to models and evaluations: ROC curve and reliability diagram per
//! label, training curves for networks (plotters, SVG backend only: no fonts or native
//! libraries needed).

use carelens_ml::image::TrainHistory;
use carelens_ml::{Bin, LabelReport};
use plotters::prelude::*;

/// (false positive rate, true positive rate) points, from the highest score down.
pub fn roc_points(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = labels.iter().filter(|&&l| !l).count().max(1) as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if k + 1 == order.len() || scores[order[k + 1]] != scores[i] {
            out.push((fp / neg, tp / pos));
        }
    }
    out
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>) -> Vec<u8> {
    let mut text = String::new();
    {
        let area = SVGBackend::with_string(&mut text, (520, 440)).into_drawing_area();
        let drawn = area.fill(&WHITE).map_err(|e| e.to_string()).and_then(|()| draw(&area));
        if let Err(e) = drawn.and_then(|()| area.present().map_err(|e| e.to_string())) {
            tracing::warn!("plot not drawn: {e}");
        }
    }
    text.into_bytes()
}

/// ROC curve with the operating point at the chosen threshold.
pub fn roc_svg(report: &LabelReport, points: &[(f64, f64)]) -> Vec<u8> {
    svg(|area| {
        let title = match &report.auroc {
            Some(i) => format!("ROC {}: AUROC {:.3} ({:.3}-{:.3})", report.label, i.estimate, i.low, i.high),
            None => format!("ROC {}: one class only", report.label),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("1 - specificity").y_desc("sensitivity").draw().map_err(|e| e.to_string())?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], &BLACK.mix(0.3))).map_err(|e| e.to_string())?;
        chart.draw_series(LineSeries::new(points.iter().copied(), BLUE.stroke_width(2))).map_err(|e| e.to_string())?;
        let op = (1.0 - report.specificity, report.sensitivity);
        chart.draw_series([Circle::new(op, 5, RED.filled())]).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Observed frequency against mean predicted probability per bin.
pub fn reliability_svg(label: &str, ece: f64, bins: &[Bin]) -> Vec<u8> {
    svg(|area| {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Reliability {label}: ECE {ece:.3}"), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("predicted probability")
            .y_desc("observed frequency")
            .draw()
            .map_err(|e| e.to_string())?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], &BLACK.mix(0.3))).map_err(|e| e.to_string())?;
        let pts: Vec<(f64, f64)> =
            bins.iter().filter(|b| b.count > 0).map(|b| (b.mean_probability, b.observed_rate)).collect();
        chart.draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2))).map_err(|e| e.to_string())?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled()))).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Training and validation loss and mean validation AUROC per epoch.
pub fn training_svg(history: &TrainHistory) -> Vec<u8> {
    svg(|area| {
        let n = history.epochs.len().max(2) as f64;
        let top = history.epochs.iter().flat_map(|e| [e.train_loss, e.val_loss]).fold(0.1f64, f64::max).min(3.0);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Training (best epoch {})", history.best_epoch), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(1f64..n, 0f64..top.max(1.0))
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("epoch").y_desc("loss / AUROC").draw().map_err(|e| e.to_string())?;
        let series = |f: &dyn Fn(&carelens_ml::image::EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
            history.epochs.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v.min(top)))).collect()
        };
        for (pts, color, name) in [
            (series(&|e| Some(e.train_loss)), BLUE, "train loss"),
            (series(&|e| Some(e.val_loss)), RED, "validation loss"),
            (series(&|e| e.mean_val_auroc), GREEN, "validation AUROC"),
        ] {
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn file_label(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Plots for a model's validation: `scores[k]` are label k's validation scores (any
/// monotone scale) and `targets[k]` its truths.
pub fn for_reports(
    reports: &[LabelReport],
    scores: &[Vec<f64>],
    targets: &[Vec<bool>],
    history: Option<&TrainHistory>,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for ((r, s), t) in reports.iter().zip(scores).zip(targets) {
        let name = file_label(&r.label);
        out.push((format!("roc-{name}.svg"), roc_svg(r, &roc_points(s, t))));
        out.push((format!("reliability-{name}.svg"), reliability_svg(&r.label, r.ece, &r.reliability)));
    }
    if let Some(h) = history {
        out.push(("training.svg".to_owned(), training_svg(h)));
    }
    out
}
