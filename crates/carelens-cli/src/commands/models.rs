//! `carelens models list|show|promote|diff`.

use anyhow::{Result, bail};
use carelens_ml::{ModelBody, ModelManifest, Registry};
use serde::Serialize;

use crate::cli::ModelsCommand;
use crate::context::Light;
use crate::output;

#[derive(Serialize)]
struct Row {
    name: String,
    version: u32,
    promoted: bool,
    kind: &'static str,
    labels: Vec<String>,
    mean_val_auroc: Option<f64>,
    train_examples: usize,
}

fn kind(m: &ModelManifest) -> &'static str {
    match m.body {
        ModelBody::Image { .. } => "image",
        ModelBody::Tabular { .. } => "tabular",
        ModelBody::Fusion { .. } => "fusion",
    }
}

fn parse_ref(registry: &Registry, reference: &str) -> Result<(String, u32)> {
    Ok(registry.resolve(reference)?)
}

pub fn run(ctx: &Light, cmd: &ModelsCommand) -> Result<()> {
    let registry = Registry::new(&ctx.models);
    match cmd {
        ModelsCommand::List => {
            let mut rows = Vec::new();
            for name in registry.names()? {
                let promoted = registry.promoted(&name)?;
                for v in registry.versions(&name)? {
                    let m = registry.load(&name, v)?;
                    rows.push(Row {
                        name: name.clone(),
                        version: v,
                        promoted: promoted == Some(v),
                        kind: kind(&m),
                        labels: m.labels.clone(),
                        mean_val_auroc: m.mean_auroc(),
                        train_examples: m.dataset.train_examples,
                    });
                }
            }
            if ctx.json {
                return output::json(&rows);
            }
            if rows.is_empty() {
                outln!("no models in {}; train one with `carelens train image|tabular`", registry.root().display());
            }
            for r in rows {
                outln!(
                    "{}{:<24} v{:<3} {:<8} val AUROC {:<6} train n {:<7} {}",
                    if r.promoted { "* " } else { "  " },
                    r.name,
                    r.version,
                    r.kind,
                    r.mean_val_auroc.map_or("n/a".into(), |a| format!("{a:.3}")),
                    r.train_examples,
                    r.labels.join(", ")
                );
            }
            Ok(())
        }
        ModelsCommand::Show { model } => {
            let (name, v) = parse_ref(&registry, model)?;
            let m = registry.load(&name, v)?;
            if ctx.json {
                return output::json(&m);
            }
            let card = fs_err::read_to_string(registry.dir(&name, v).join("MODEL_CARD.md"))
                .unwrap_or_else(|_| carelens_ml::model_card(&m));
            outln!("{card}");
            outln!("files: {}", registry.dir(&name, v).display());
            Ok(())
        }
        ModelsCommand::Promote { model, best } => {
            let (name, v) = if *best {
                if model.contains('@') {
                    bail!("--best picks the version itself; give the model name without @N");
                }
                let Some(v) = registry.best(model)? else {
                    bail!("no version of {model} has a validation AUROC to compare");
                };
                (model.clone(), v)
            } else {
                if !model.contains('@') {
                    bail!("say which version to promote (NAME@N), or pass --best");
                }
                parse_ref(&registry, model)?
            };
            registry.promote(&name, v)?;
            outln!("{name} v{v} is now the promoted version");
            Ok(())
        }
        ModelsCommand::Diff { a, b } => {
            let (na, va) = parse_ref(&registry, a)?;
            let (nb, vb) = parse_ref(&registry, b)?;
            let (ma, mb) = (registry.load(&na, va)?, registry.load(&nb, vb)?);
            if ctx.json {
                return output::json(&serde_json::json!({ "a": ma, "b": mb }));
            }
            outln!("{:<28} {:>24} {:>24}", "", format!("{na} v{va}"), format!("{nb} v{vb}"));
            let line = |what: &str, x: String, y: String| {
                let mark = if x == y { " " } else { "≠" };
                outln!("{mark} {what:<26} {x:>24} {y:>24}");
            };
            line("kind", kind(&ma).into(), kind(&mb).into());
            line("data fingerprint", ma.dataset.fingerprint[..12].into(), mb.dataset.fingerprint[..12].into());
            line("train examples", ma.dataset.train_examples.to_string(), mb.dataset.train_examples.to_string());
            line("backend", ma.backend.clone(), mb.backend.clone());
            line("training seconds", format!("{:.1}", ma.training_seconds), format!("{:.1}", mb.training_seconds));
            let flat = |m: &ModelManifest| -> Vec<(String, String)> {
                let mut out = Vec::new();
                flatten("", &m.training, &mut out);
                out
            };
            let (fa, fb) = (flat(&ma), flat(&mb));
            for (k, x) in &fa {
                let y = fb.iter().find(|(kb, _)| kb == k).map_or("—".to_owned(), |(_, y)| y.clone());
                if *x != y && x.len() < 40 && y.len() < 40 {
                    line(k, x.clone(), y);
                }
            }
            for label in ma.labels.iter().chain(mb.labels.iter().filter(|l| !ma.labels.contains(l))) {
                let get = |m: &ModelManifest| {
                    m.assessment.reports.iter().find(|r| &r.label == label).map(|r| {
                        (
                            r.auroc.as_ref().map_or("n/a".into(), |i| format!("{:.3}", i.estimate)),
                            format!("{:.3}", r.ece),
                        )
                    })
                };
                let (x, y) = (get(&ma), get(&mb));
                let f = |v: &Option<(String, String)>, i: usize| {
                    v.as_ref().map_or("—".to_owned(), |t| if i == 0 { t.0.clone() } else { t.1.clone() })
                };
                line(&format!("{label} AUROC"), f(&x, 0), f(&y, 0));
                line(&format!("{label} ECE"), f(&x, 1), f(&y, 1));
            }
            Ok(())
        }
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}
