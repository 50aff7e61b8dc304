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
pub mod schedule;
pub mod search;

pub use error::{BookingError, Result};
