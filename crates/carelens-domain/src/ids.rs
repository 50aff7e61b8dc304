//! Identifiers. Patients and providers get short human-readable ids with a check character
//! (Luhn mod 32 over Crockford base32) so that a mistyped id is rejected instead of
//! silently naming someone else. Everything else is a UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result, invalid};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 10;
/// Largest number a prefixed id can encode: 10 base32 digits.
const MAX_NUMBER: u64 = (1 << 50) - 1;

fn digit_value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Luhn mod N check character (N = 32).
fn check_char(body: &[u8]) -> u8 {
    let n = 32;
    let mut factor = 2;
    let mut sum = 0;
    for &c in body.iter().rev() {
        let addend = factor * digit_value(c).unwrap_or(0);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    let remainder = sum % n;
    ALPHABET[((n - remainder) % n) as usize]
}

fn encode(prefix: &str, number: u64) -> String {
    let mut body = [0u8; BODY_LEN];
    let mut n = number & MAX_NUMBER;
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(n % 32) as usize];
        n /= 32;
    }
    let mut s = String::with_capacity(prefix.len() + BODY_LEN + 1);
    s.push_str(prefix);
    s.extend(body.iter().map(|&b| b as char));
    s.push(check_char(&body) as char);
    s
}

fn parse_prefixed(field: &str, prefix: &str, raw: &str) -> Result<String> {
    let s = raw.trim().to_ascii_uppercase();
    let expected_len = prefix.len() + BODY_LEN + 1;
    if !s.starts_with(prefix) || s.len() != expected_len {
        return Err(invalid(field, format!("expected `{prefix}` followed by 11 characters")));
    }
    let body = &s.as_bytes()[prefix.len()..prefix.len() + BODY_LEN];
    if body.iter().any(|&c| digit_value(c).is_none()) {
        return Err(invalid(field, "contains a character outside Crockford base32"));
    }
    if s.as_bytes()[expected_len - 1] != check_char(body) {
        return Err(invalid(field, "check character does not match (mistyped id?)"));
    }
    Ok(s)
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Encodes a number below 2^50 (higher bits are ignored).
            pub fn from_number(number: u64) -> Self {
                Self(encode($prefix, number))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self> {
                parse_prefixed($field, $prefix, s).map(Self)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// The carelens Health ID: the only key a patient is stored under. Never a national
    /// insurance or tax number; those stay outside carelens.
    HealthId, "CLH", "health_id"
);
prefixed_id!(
    /// A practitioner or practice.
    ProviderId, "PRV", "provider_id"
);

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4())
            }

            /// A deterministic id (used by the synthetic generator and in tests).
            pub fn from_u128(v: u128) -> Self {
                Self(uuid::Uuid::from_u128(v))
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self> {
                uuid::Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| invalid(stringify!($name), "not a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A history entry.
    EntryId
);
uuid_id!(AppointmentId);
uuid_id!(ReviewId);
uuid_id!(RuleId);
uuid_id!(ClosureId);
uuid_id!(PredictionSetId);
uuid_id!(ConsentId);
uuid_id!(DocumentId);
uuid_id!(UserId);
uuid_id!(FeedbackId);
uuid_id!(PrescriptionId);
uuid_id!(CareTeamId);

/// The key of an object in the object store (local files or S3). Relative, `/`-separated,
/// no `..`, characters `[A-Za-z0-9._-/]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The content-addressed key of bytes with this SHA-256 digest (hex, lower case).
    pub fn for_sha256(hex_digest: &str) -> Result<Self> {
        if hex_digest.len() != 64 || !hex_digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid("object_key", "sha256 digest must be 64 lower-case hex characters"));
        }
        Ok(Self(format!("sha256/{}/{}", &hex_digest[..2], hex_digest)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ObjectKey {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self> {
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        let ok_segments = s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if s.is_empty() || s.len() > 1024 || !ok_chars || !ok_segments {
            return Err(invalid(
                "object_key",
                "must be a relative path of [A-Za-z0-9._-] segments separated by `/`, at most 1024 bytes",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> String {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_ids_round_trip_and_reject_typos() {
        for n in [0, 1, 31, 32, 12_345_678, MAX_NUMBER] {
            let id = HealthId::from_number(n);
            assert_eq!(id.as_str().len(), 14);
            assert_eq!(id.as_str().parse::<HealthId>().unwrap(), id);
            assert_eq!(id.as_str().to_lowercase().parse::<HealthId>().unwrap(), id);
            // Every single-character substitution in the body is caught by the check character.
            let bytes = id.as_str().as_bytes();
            for pos in 3..13 {
                for &c in ALPHABET {
                    if c == bytes[pos] {
                        continue;
                    }
                    let mut typo = bytes.to_vec();
                    typo[pos] = c;
                    let typo = String::from_utf8(typo).unwrap();
                    assert!(typo.parse::<HealthId>().is_err(), "{typo} accepted");
                }
            }
        }
    }

    #[test]
    fn malformed_ids_name_the_field() {
        for bad in ["", "CLH", "PRV0000000000X", "CLH00000000U00", "CLH0000000000000"] {
            let err = bad.parse::<HealthId>().unwrap_err();
            assert!(err.to_string().starts_with("invalid health_id"), "{bad}: {err}");
        }
        assert!(ProviderId::from_number(5).as_str().parse::<HealthId>().is_err());
    }

    #[test]
    fn object_keys_are_relative_and_clean() {
        for good in ["sha256/ab/abcdef", "heatmaps/x-1.png"] {
            assert!(good.parse::<ObjectKey>().is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a/../b", "a//b", "a b", "a/./b", "ä"] {
            assert!(bad.parse::<ObjectKey>().is_err(), "{bad}");
        }
        let digest = "a".repeat(64);
        assert_eq!(ObjectKey::for_sha256(&digest).unwrap().as_str(), format!("sha256/aa/{digest}"));
        assert!(ObjectKey::for_sha256("XYZ").is_err());
    }
}
