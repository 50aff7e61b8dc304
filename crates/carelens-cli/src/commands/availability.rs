//! `carelens availability import`: own schedules plus external feeds → merged openings.

use std::path::Path;

use anyhow::{Result, bail};
use carelens_booking::feeds::Platform;
use carelens_server::availability::{FeedInput, RefreshReport, refresh, sample_feeds};

use crate::cli::{AvailabilityImportArgs, AvailabilitySamplesArgs};
use crate::context::Context;
use crate::output;

fn read(platform: Platform, path: &Path) -> FeedInput {
    FeedInput { platform, name: path.display().to_string(), bytes: fs_err::read(path).map_err(|e| e.to_string()) }
}

pub fn import(ctx: &Context, args: &AvailabilityImportArgs) -> Result<()> {
    if args.horizon_days == 0 || args.horizon_days > 730 {
        bail!("--horizon-days must be within 1..=730");
    }
    if args.every == Some(0) {
        bail!("--every must be at least 1 minute");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.every.is_some() {
        let stop = std::sync::Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst)).ok();
    }
    loop {
        let mut feeds = Vec::new();
        if let Some(p) = &args.doctolib {
            feeds.push(read(Platform::Doctolib, p));
        }
        if let Some(p) = &args.jameda {
            feeds.push(read(Platform::Jameda, p));
        }
        let now = args.now.unwrap_or_else(chrono::Utc::now);
        let horizon = chrono::Duration::days(i64::from(args.horizon_days));
        let report = ctx.runtime.block_on(refresh(ctx.store.as_ref(), feeds, now, horizon))?;
        if ctx.json {
            output::json(&report)?;
        } else {
            print(&report);
        }
        let Some(minutes) = args.every else { break };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(u64::from(minutes) * 60);
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Ok(())
}

fn print(r: &RefreshReport) {
    println!(
        "openings {} → {}: {} providers, {} from their own schedules",
        r.from.format("%Y-%m-%d %H:%M UTC"),
        r.to.format("%Y-%m-%d %H:%M UTC"),
        r.providers,
        r.own_listings
    );
    for f in &r.feeds {
        match &f.error {
            Some(e) => println!("  {} {}: NOT imported, its last good openings stay: {e}", f.platform, f.name),
            None => println!(
                "  {} {}: {} openings imported, {} outside the window, {} bad entries skipped, {} practitioners not in the directory",
                f.platform,
                f.name,
                f.listings,
                f.outside_window,
                f.problem_count,
                f.unmatched_practitioners.len()
            ),
        }
        for p in &f.problems {
            println!("    skipped {p}");
        }
        if f.problem_count > f.problems.len() {
            println!(
                "    … and {} more (--json lists the first {})",
                f.problem_count - f.problems.len(),
                f.problems.len()
            );
        }
        for u in &f.unmatched_practitioners {
            println!("    not in the directory: {u}");
        }
    }
    println!(
        "merged: {} bookable openings ({} listed on more than one source, {} overlapping listings dropped)",
        r.openings, r.duplicates, r.overlaps
    );
}

pub fn samples(ctx: &Context, args: &AvailabilitySamplesArgs) -> Result<()> {
    if args.days == 0 || args.days > 365 {
        bail!("--days must be within 1..=365");
    }
    let from = args.now.unwrap_or_else(chrono::Utc::now);
    let to = from + chrono::Duration::days(i64::from(args.days));
    let (doctolib, jameda) = ctx.runtime.block_on(sample_feeds(ctx.store.as_ref(), from, to, args.per_provider))?;
    fs_err::create_dir_all(&args.out)?;
    let mut written = Vec::new();
    for (name, value) in [("doctolib.json", doctolib), ("jameda.json", jameda)] {
        let path = args.out.join(name);
        fs_err::write(&path, serde_json::to_vec_pretty(&value)?)?;
        written.push(path.display().to_string());
    }
    if ctx.json {
        output::json(&written)?;
    } else {
        for w in &written {
            println!("{w}");
        }
    }
    Ok(())
}
