//! The rules a booking must pass before the store is asked to claim the slot.

use chrono::{DateTime, Duration, Utc};

use carelens_domain::{Appointment, InsuranceKind, Opening, Provider};

use crate::error::{BookingError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How far ahead patients may book.
    pub horizon: Duration,
    /// How soon before the start a slot may still be booked (or moved to).
    pub min_notice: Duration,
    /// Upcoming appointments (not final) a patient may hold at once.
    pub max_active: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self { horizon: Duration::days(90), min_notice: Duration::hours(2), max_active: 5 }
    }
}

fn refuse(code: &'static str, message: String) -> BookingError {
    BookingError::Refused { code, message }
}

impl Policy {
    /// Checks booking `opening` with `provider` for a patient insured `insurance` who holds
    /// `held` (their appointments; the one being rescheduled excluded) at `now`.
    pub fn check(
        &self,
        now: DateTime<Utc>,
        opening: &Opening,
        provider: &Provider,
        insurance: InsuranceKind,
        held: &[Appointment],
    ) -> Result<()> {
        if opening.start < now + self.min_notice {
            return Err(refuse(
                "too_short_notice",
                format!(
                    "slots must be booked at least {} minutes ahead; choose a later opening",
                    self.min_notice.num_minutes()
                ),
            ));
        }
        if opening.start > now + self.horizon {
            return Err(refuse(
                "beyond_horizon",
                format!("bookings open {} days ahead; choose an earlier opening", self.horizon.num_days()),
            ));
        }
        if !provider.accepts.contains(&insurance)
            || !(opening.insurance.is_empty() || opening.insurance.contains(&insurance))
        {
            return Err(refuse(
                "insurance_not_accepted",
                format!("this opening is not for {} patients", insurance.as_str()),
            ));
        }
        let active = held.iter().filter(|a| !a.status.is_final() && a.start >= now).count();
        if active >= self.max_active {
            return Err(refuse(
                "too_many_bookings",
                format!("a patient may hold {} upcoming appointments; cancel one first", self.max_active),
            ));
        }
        Ok(())
    }
}
