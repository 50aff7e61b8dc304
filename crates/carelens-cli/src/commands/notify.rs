//! `carelens notify`: deliver the booking outbox, see its state.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use carelens_notify::{Deliverer, DeliveryReport, RetryPolicy, Transport};

use crate::cli::NotifySendArgs;
use crate::context::Context;
use crate::output;

/// A deliverer for `mail` (a transport URL) from `from`.
pub fn deliverer(ctx: &Context, mail: &str, from: &str) -> Result<Deliverer> {
    let transport = Transport::from_url(mail).context("CARELENS_MAIL_URL / --mail")?;
    Deliverer::new(Arc::clone(&ctx.store), transport, from, RetryPolicy::default())
        .context("CARELENS_MAIL_FROM / --from")
}

pub fn send(ctx: &Context, args: &NotifySendArgs) -> Result<()> {
    if args.every == Some(0) {
        bail!("--every must be at least 1 second");
    }
    let d = deliverer(ctx, &args.mail, &args.from)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.every.is_some() {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst)).ok();
    }
    loop {
        let now = args.now.unwrap_or_else(chrono::Utc::now);
        let report = ctx.runtime.block_on(d.deliver_due(now))?;
        if ctx.json {
            output::json(&report)?;
        } else {
            print(&report, &d.transport().location());
        }
        let Some(secs) = args.every else { break };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Ok(())
}

fn print(r: &DeliveryReport, to: &str) {
    outln!(
        "outbox → {to}: {} sent, {} to retry later, {} given up, {} no longer needed (moved or cancelled)",
        r.sent,
        r.retried,
        r.dead,
        r.cancelled
    );
    if let Some(e) = &r.last_error {
        outln!("  last failure: {e}");
        if r.retried > 0 {
            outln!("  (check that the mail server is reachable; failed messages are retried after 1, 2, 4 … minutes)");
        }
    }
}

pub fn status(ctx: &Context) -> Result<()> {
    let counts = ctx.runtime.block_on(ctx.store.outbox_counts())?;
    if ctx.json {
        return output::json(&counts);
    }
    if counts.is_empty() {
        outln!("The outbox is empty: no bookings with an e-mail address yet.");
        return Ok(());
    }
    for state in ["pending", "sent", "dead", "cancelled"] {
        outln!("{state:<10} {}", counts.get(state).copied().unwrap_or(0));
    }
    if counts.get("pending").copied().unwrap_or(0) > 0 {
        outln!("Pending messages go out with `carelens notify send` (or `carelens serve` with CARELENS_MAIL_URL set).");
    }
    Ok(())
}
