use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure, invalid};
use crate::ids::HealthId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    /// German civil status "divers".
    Diverse,
    Unknown,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Diverse => "diverse",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceKind {
    /// Gesetzliche Krankenversicherung (GKV).
    Statutory,
    /// Private Krankenversicherung (PKV).
    Private,
}

impl InsuranceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Statutory => "statutory",
            Self::Private => "private",
        }
    }
}

/// Health insurance: the kind, and the insurer's 9-digit Institutionskennzeichen (IK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insurance {
    pub kind: InsuranceKind,
    pub insurer_id: String,
}

impl Validate for Insurance {
    fn validate(&self) -> Result<()> {
        ensure(
            self.insurer_id.len() == 9 && self.insurer_id.bytes().all(|b| b.is_ascii_digit()),
            "insurance.insurer_id",
            || "expected a 9-digit Institutionskennzeichen".into(),
        )
    }
}

/// WGS84 coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "(f64, f64)", into = "(f64, f64)")]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self> {
        ensure((-90.0..=90.0).contains(&lat), "location.lat", || "must be within -90..=90".into())?;
        ensure((-180.0..=180.0).contains(&lon), "location.lon", || "must be within -180..=180".into())?;
        Ok(Self { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0088 * a.sqrt().asin()
    }
}

impl TryFrom<(f64, f64)> for GeoPoint {
    type Error = crate::DomainError;
    fn try_from((lat, lon): (f64, f64)) -> Result<Self> {
        Self::new(lat, lon)
    }
}

impl From<GeoPoint> for (f64, f64) {
    fn from(p: GeoPoint) -> Self {
        (p.lat, p.lon)
    }
}

/// Where a patient lives, as coarse as analytics may use it: region (Bundesland), city,
/// postcode and the city's coordinates (never the street address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Residence {
    pub region: String,
    pub city: String,
    pub postcode: String,
    pub location: GeoPoint,
}

impl Validate for Residence {
    fn validate(&self) -> Result<()> {
        ensure(!self.region.trim().is_empty(), "residence.region", || "must not be empty".into())?;
        ensure(!self.city.trim().is_empty(), "residence.city", || "must not be empty".into())?;
        ensure(
            self.postcode.len() == 5 && self.postcode.bytes().all(|b| b.is_ascii_digit()),
            "residence.postcode",
            || "expected a 5-digit German postcode".into(),
        )
    }
}

/// A person's name. Its `Debug` output is redacted so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    pub given: String,
    pub family: String,
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonName(<redacted>)")
    }
}

/// A patient. Keyed by the carelens [`HealthId`] only. `Debug` redacts name and birth date.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub id: HealthId,
    pub name: PersonName,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub residence: Residence,
    pub insurance: Insurance,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("birth_date", &"<redacted>")
            .field("sex", &self.sex)
            .field("region", &self.residence.region)
            .field("insurance", &self.insurance.kind)
            .finish()
    }
}

impl Patient {
    pub fn new(
        id: HealthId,
        name: PersonName,
        birth_date: NaiveDate,
        sex: Sex,
        residence: Residence,
        insurance: Insurance,
    ) -> Result<Self> {
        let p = Self { id, name, birth_date, sex, residence, insurance };
        p.validate()?;
        Ok(p)
    }

    /// Age in completed years on `on` (0 for dates before birth).
    pub fn age_on(&self, on: NaiveDate) -> u32 {
        on.years_since(self.birth_date).unwrap_or(0)
    }
}

impl Validate for Patient {
    fn validate(&self) -> Result<()> {
        ensure(!self.name.family.trim().is_empty(), "name.family", || "must not be empty".into())?;
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).ok_or_else(|| invalid("birth_date", "calendar"))?;
        ensure(self.birth_date >= earliest, "birth_date", || "must not be before 1900-01-01".into())?;
        ensure(self.birth_date <= chrono::Utc::now().date_naive(), "birth_date", || {
            "must not be in the future".into()
        })?;
        self.residence.validate()?;
        self.insurance.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Patient {
        Patient::new(
            HealthId::from_number(1),
            PersonName { given: "Erika".into(), family: "Mustermann".into() },
            NaiveDate::from_ymd_opt(1964, 8, 12).unwrap(),
            Sex::Female,
            Residence {
                region: "Berlin".into(),
                city: "Berlin".into(),
                postcode: "10115".into(),
                location: GeoPoint::new(52.52, 13.405).unwrap(),
            },
            Insurance { kind: InsuranceKind::Statutory, insurer_id: "109519005".into() },
        )
        .unwrap()
    }

    #[test]
    fn debug_output_never_contains_name_or_birth_date() {
        let p = sample();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("Erika") && !dbg.contains("Mustermann") && !dbg.contains("1964"), "{dbg}");
        assert!(dbg.contains(p.id.as_str()));
    }

    #[test]
    fn invalid_patients_name_the_field() {
        type Mutation = fn(&mut Patient);
        let cases: Vec<(Mutation, &str)> = vec![
            (|p| p.birth_date = NaiveDate::from_ymd_opt(1850, 1, 1).unwrap(), "birth_date"),
            (|p| p.birth_date = NaiveDate::from_ymd_opt(2999, 1, 1).unwrap(), "birth_date"),
            (|p| p.residence.postcode = "1011".into(), "residence.postcode"),
            (|p| p.insurance.insurer_id = "12".into(), "insurance.insurer_id"),
            (|p| p.name.family = " ".into(), "name.family"),
        ];
        for (mutate, field) in cases {
            let mut p = sample();
            mutate(&mut p);
            let err = p.validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid {field}:")), "{err}");
        }
    }

    #[test]
    fn geo_points_and_distance() {
        assert!(GeoPoint::new(91.0, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -181.0).is_err());
        let berlin = GeoPoint::new(52.52, 13.405).unwrap();
        let munich = GeoPoint::new(48.137, 11.575).unwrap();
        let d = berlin.distance_km(munich);
        assert!((500.0..510.0).contains(&d), "{d}");
        assert!(serde_json::from_str::<GeoPoint>("[100.0, 0.0]").is_err());
    }

    #[test]
    fn age() {
        let p = sample();
        assert_eq!(p.age_on(NaiveDate::from_ymd_opt(2026, 8, 11).unwrap()), 61);
        assert_eq!(p.age_on(NaiveDate::from_ymd_opt(2026, 8, 12).unwrap()), 62);
    }
}
