//! `carelens availability import`: own schedules plus external feeds → merged openings.

use std::path::Path;

use anyhow::{Result, bail};
use carelens_booking::feeds::Platform;
use carelens_server::availability::{FeedInput, RefreshReport, refresh, sample_feeds};

use crate::cli::{AvailabilityImportArgs, AvailabilitySamplesArgs};
use crate::context::Context;
use crate::output;

/// The most a feed may weigh; a larger one is refused, not read into memory.
const MAX_FEED_BYTES: usize = 64 << 20;

fn read(platform: Platform, path: &Path) -> FeedInput {
    let bytes = match fs_err::metadata(path) {
        Ok(m) if m.len() > MAX_FEED_BYTES as u64 => {
            Err(format!("{} bytes, more than the 64 MiB a feed may have", m.len()))
        }
        _ => fs_err::read(path).map_err(|e| e.to_string()),
    };
    FeedInput { platform, name: path.display().to_string(), bytes }
}

/// GETs `url` (30 s timeout, at most [`MAX_FEED_BYTES`]); any failure is the feed's error.
async fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("carelens/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client.get(url).send().await.map_err(|e| format!("fetching failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("the server answered HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the response failed: {e}"))? {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err("the response is larger than the 64 MiB a feed may have".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A feed from a file or an http(s) URL.
fn feed(ctx: &Context, platform: Platform, source: &str) -> FeedInput {
    if source.starts_with("http://") || source.starts_with("https://") {
        FeedInput { platform, name: source.to_owned(), bytes: ctx.runtime.block_on(fetch(source)) }
    } else {
        read(platform, Path::new(source))
    }
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
            feeds.push(feed(ctx, Platform::Doctolib, p));
        }
        if let Some(p) = &args.jameda {
            feeds.push(feed(ctx, Platform::Jameda, p));
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
    outln!(
        "openings {} → {}: {} providers, {} from their own schedules",
        r.from.format("%Y-%m-%d %H:%M UTC"),
        r.to.format("%Y-%m-%d %H:%M UTC"),
        r.providers,
        r.own_listings
    );
    for f in &r.feeds {
        match &f.error {
            Some(e) => outln!("  {} {}: NOT imported, its last good openings stay: {e}", f.platform, f.name),
            None => outln!(
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
            outln!("    skipped {p}");
        }
        if f.problem_count > f.problems.len() {
            outln!(
                "    … and {} more (--json lists the first {})",
                f.problem_count - f.problems.len(),
                f.problems.len()
            );
        }
        for u in &f.unmatched_practitioners {
            outln!("    not in the directory: {u}");
        }
    }
    outln!(
        "merged: {} bookable openings ({} listed on more than one source, {} overlapping listings dropped)",
        r.openings,
        r.duplicates,
        r.overlaps
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
            outln!("{w}");
        }
    }
    Ok(())
}

/// What the demo's booking step did.
#[derive(Debug, serde::Serialize)]
pub struct DemoBooking {
    pub feeds_dir: String,
    pub refresh: RefreshReport,
    /// Bookings made (or found from an earlier demo run) through the same rules as the API.
    pub bookings: Vec<DemoBooked>,
    /// Where the bookings' confirmation mails were written (`file://…`, one .eml each).
    pub mail_dir: String,
    pub mail: carelens_notify::DeliveryReport,
}

#[derive(Debug, serde::Serialize)]
pub struct DemoBooked {
    pub appointment: String,
    /// The patient's Health ID.
    pub patient: String,
    pub provider: String,
    pub start: chrono::DateTime<chrono::Utc>,
    /// `false` when an earlier demo run had booked it already (same idempotency key).
    pub new: bool,
}

/// The demo's booking step: sample feeds for the population's providers, the import, and a
/// few bookings of the earliest openings (idempotent across demo runs).
pub fn demo_step(ctx: &Context) -> Result<DemoBooking> {
    use carelens_booking::policy::Policy;
    let now = chrono::Utc::now();
    let dir = ctx.data_dir.join("incoming/feeds");
    let (doctolib, jameda) =
        ctx.runtime.block_on(sample_feeds(ctx.store.as_ref(), now, now + chrono::Duration::days(14), 20))?;
    fs_err::create_dir_all(&dir)?;
    let mut feeds = Vec::new();
    for (platform, name, value) in
        [(Platform::Doctolib, "doctolib.json", doctolib), (Platform::Jameda, "jameda.json", jameda)]
    {
        let path = dir.join(name);
        fs_err::write(&path, serde_json::to_vec_pretty(&value)?)?;
        feeds.push(read(platform, &path));
    }
    let policy = Policy::default();
    let report = ctx.runtime.block_on(refresh(ctx.store.as_ref(), feeds, now, policy.horizon))?;
    let mut bookings = Vec::new();
    let patients = ctx.runtime.block_on(ctx.store.list_patients(carelens_store::PageRequest::first(3)))?.items;
    let earliest = ctx.runtime.block_on(ctx.store.earliest_openings(now + policy.min_notice, now + policy.horizon))?;
    for (i, (patient, (provider_id, _))) in patients.iter().zip(earliest.iter()).enumerate() {
        let id = carelens_booking::appointment_id(&patient.id, &format!("demo-booking-{i}"));
        if let Some(a) = ctx.runtime.block_on(ctx.store.get_appointment(&id))? {
            bookings.push(DemoBooked {
                appointment: a.id.to_string(),
                patient: a.patient.to_string(),
                provider: a.provider.to_string(),
                start: a.start,
                new: false,
            });
            continue;
        }
        let Some(provider) = ctx.runtime.block_on(ctx.store.get_provider(provider_id))? else { continue };
        let open =
            ctx.runtime.block_on(ctx.store.openings_for(provider_id, now + policy.min_notice, now + policy.horizon))?;
        let held = ctx.runtime.block_on(ctx.store.appointments_for_patient(&patient.id))?;
        let Some(opening) =
            open.into_iter().find(|o| policy.check(now, o, &provider, patient.insurance.kind, &held).is_ok())
        else {
            continue;
        };
        let a = carelens_booking::booking_of(id, &patient.id, &opening, now);
        // Someone may have taken the slot since: then this demo booking is skipped.
        if let Ok(b) = ctx.runtime.block_on(ctx.store.book(&a)) {
            bookings.push(DemoBooked {
                appointment: b.appointment.id.to_string(),
                patient: b.appointment.patient.to_string(),
                provider: b.appointment.provider.to_string(),
                start: b.appointment.start,
                new: b.created,
            });
        }
    }
    // Each demo booking's confirmation goes to a made-up address as an .eml file (no mail
    // server needed); its reminders wait in the outbox until due.
    let mut messages = Vec::new();
    for (i, b) in bookings.iter().enumerate() {
        let id: carelens_domain::AppointmentId = b.appointment.parse()?;
        if let Some(a) = ctx.runtime.block_on(ctx.store.get_appointment(&id))? {
            messages.extend(carelens_booking::notify::outbox_for_booking(
                &a,
                &format!("demo.patient{}@example.org", i + 1),
                a.booked_at,
            )?);
        }
    }
    ctx.runtime.block_on(ctx.store.enqueue_messages(&messages))?;
    let mail_dir = ctx.data_dir.join("mail");
    let url = format!("file://{}", mail_dir.display());
    let deliverer = super::notify::deliverer(ctx, &url, crate::cli::DEFAULT_MAIL_FROM)?;
    let mail = ctx.runtime.block_on(deliverer.deliver_due(now))?;
    Ok(DemoBooking { feeds_dir: dir.display().to_string(), refresh: report, bookings, mail_dir: url, mail })
}

pub fn print_demo(d: &DemoBooking) {
    print(&d.refresh);
    outln!("sample feeds: {}", d.feeds_dir);
    for b in &d.bookings {
        outln!(
            "booked {} with {} at {}{}",
            b.appointment,
            b.provider,
            carelens_booking::feeds::berlin_local(b.start),
            if b.new { "" } else { " (from an earlier demo run)" }
        );
    }
    if d.mail.sent > 0 {
        outln!(
            "{} confirmation mails (with .ics) written to {}; reminders wait in the outbox (`carelens notify status`)",
            d.mail.sent,
            d.mail_dir
        );
    }
}
