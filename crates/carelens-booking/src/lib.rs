//! Booking without IO: everything between "a patient looks for a doctor" and "the store
//! claims the slot" that can be decided on values alone.
//!
//! - [`search`]: filter and rank the provider directory (distance, earliest opening, rating
//!   shrunk towards the mean by its review count), with paging.
//! - [`feeds`]: two external availability feeds with different JSON shapes (Doctolib-style
//!   agendas with UTC-offset times, Jameda-style practice calendars in local time),
//!   normalised to [`feeds::FeedOpening`]s, every bad entry reported by its JSON path.
//! - [`schedule`]: openings computed from carelens's own weekly schedule rules (local time,
//!   Europe/Berlin), with closures and a booking horizon.
//! - [`merge`]: feeds and own openings into one set per provider and start, de-duplicated
//!   across platforms (practitioner identity + address + time) with provenance.
//! - [`policy`]: the rules a booking must pass (horizon, minimum notice, active bookings per
//!   patient, insurance accepted).
//! - [`notify`]: which messages an appointment gets when (confirmation, reminders) and its
//!   iCalendar (`.ics`) file.
//!
//! The atomic slot claim itself is the store's (`Store::book`: a unique index, not
//! check-then-insert).

pub mod error;
pub mod feeds;
pub mod merge;
pub mod normalise;
pub mod notify;
pub mod policy;
pub mod samples;
pub mod schedule;
pub mod search;

pub use error::{BookingError, Result};

use carelens_domain::{AppointmentId, HealthId};
use sha2::{Digest, Sha256};

/// The appointment id of a patient's booking request carrying idempotency key `key` (the
/// client's `Idempotency-Key`): the same patient and key always give the same id, so a
/// retried request books once (`Store::book` is insert-once by id). Keys of different
/// patients never share an id, even when clients reuse simple keys.
pub fn appointment_id(patient: &HealthId, key: &str) -> AppointmentId {
    let mut h = Sha256::new();
    h.update(b"carelens-booking-v1\0");
    h.update(patient.as_str().as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    // An RFC 9562 version 8 (custom) UUID.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    AppointmentId::from_u128(u128::from_be_bytes(b))
}

/// The appointment a patient's booking of `opening` at `now` creates (status booked).
pub fn booking_of(
    id: AppointmentId,
    patient: &HealthId,
    opening: &carelens_domain::Opening,
    now: chrono::DateTime<chrono::Utc>,
) -> carelens_domain::Appointment {
    carelens_domain::Appointment {
        id,
        patient: patient.clone(),
        provider: opening.provider.clone(),
        start: opening.start,
        end: opening.end,
        visit_type: opening.visit_type,
        status: carelens_domain::AppointmentStatus::Booked,
        booked_at: now,
        status_changed_at: now,
    }
}
