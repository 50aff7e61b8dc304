//! e-Prescription checks and signatures (pure). [`check`] warns on allergy matches, listed
//! interactions (`maps/interactions.csv`, documented in `maps/README.md`) and duplicate therapy
//! against the patient's history and active prescriptions; [`sign`] and [`verify`] sign a
//! prescription like a document.

use std::sync::OnceLock;

use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;

use carelens_domain::{AtcCode, DocumentSignature, HistoryEntry, HistoryKind, Prescription};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Moderate,
    Major,
}

/// One warning; its `id` is what a prescriber acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `allergy:…`, `interaction:…` or `duplicate:…`; stable for the same situation.
    pub id: String,
    /// `allergy`, `interaction` or `duplicate_therapy`.
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
}

struct Interaction {
    a: &'static str,
    b: &'static str,
    severity: Severity,
    effect: &'static str,
    advice: &'static str,
}

fn interactions() -> &'static [Interaction] {
    static TABLE: OnceLock<Vec<Interaction>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("../maps/interactions.csv")
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let mut p = l.splitn(5, ',');
                let (a, b, sev, effect, advice) = (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
                let severity = if sev == "major" { Severity::Major } else { Severity::Moderate };
                Some(Interaction { a, b, severity, effect, advice })
            })
            .collect()
    })
}

/// What the patient takes on `on`: current medication entries and active prescriptions.
fn current_drugs<'a>(
    history: &'a [HistoryEntry],
    active: &'a [Prescription],
    on: NaiveDate,
) -> Vec<(&'a AtcCode, &'a str)> {
    let mut v: Vec<(&AtcCode, &str)> = history
        .iter()
        .filter_map(|e| match &e.kind {
            HistoryKind::Medication(m) | HistoryKind::PsychiatricMedication(m) if m.is_current(on) => {
                Some((&m.code, m.display.as_str()))
            }
            _ => None,
        })
        .collect();
    v.extend(active.iter().filter(|p| p.is_current(on)).map(|p| (&p.drug, p.display.as_str())));
    v
}

/// Warnings for prescribing `drug` (named `display`) to a patient with this history and these
/// prescriptions, on `on`. Sorted, most severe first.
pub fn check(
    drug: &AtcCode,
    display: &str,
    history: &[HistoryEntry],
    prescriptions: &[Prescription],
    on: NaiveDate,
) -> Vec<Warning> {
    let code = drug.as_str();
    let name = display.to_lowercase();
    let mut out = Vec::new();
    for e in history {
        let HistoryKind::Allergy(a) = &e.kind else { continue };
        let substance = a.substance.to_lowercase();
        let by_code = a.substance_code.as_ref().map(|c| c.as_str());
        // The pharmacological subgroup (ATC level 3, e.g. J01C penicillins) cross-reacts.
        let same_group = by_code.is_some_and(|c| c.len() >= 4 && code.len() >= 4 && c[..4] == code[..4]);
        let by_name = substance.len() >= 4 && (name.contains(&substance) || substance.contains(&name));
        if same_group || by_name {
            out.push(Warning {
                id: format!("allergy:{}", e.id),
                kind: "allergy",
                severity: Severity::Major,
                message: format!("the patient is allergic to {} ({:?} reaction recorded)", a.substance, a.severity)
                    .to_lowercase(),
            });
        } else if by_code.is_some_and(|c| c.starts_with("J01C")) && code.starts_with("J01D") {
            out.push(Warning {
                id: format!("allergy:{}", e.id),
                kind: "allergy",
                severity: Severity::Moderate,
                message: format!("penicillin allergy ({}): cephalosporins can cross-react", a.substance),
            });
        }
    }
    for (other, other_name) in current_drugs(history, prescriptions, on) {
        let o = other.as_str();
        for i in interactions() {
            if (code.starts_with(i.a) && o.starts_with(i.b)) || (code.starts_with(i.b) && o.starts_with(i.a)) {
                out.push(Warning {
                    id: format!("interaction:{}+{}:{o}", i.a, i.b),
                    kind: "interaction",
                    severity: i.severity,
                    message: format!("with {other_name} ({o}): {}; {}", i.effect, i.advice),
                });
            }
        }
        if o.len() >= 5 && code.len() >= 5 && o[..5] == code[..5] {
            out.push(Warning {
                id: format!("duplicate:{o}"),
                kind: "duplicate_therapy",
                severity: Severity::Moderate,
                message: format!("already takes {other_name} ({o}) from the same drug group"),
            });
        }
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// Signs `rx` (its [`Prescription::signed_message`]) with a seed.
pub fn sign(seed: &[u8; 32], rx: &Prescription) -> DocumentSignature {
    let key = SigningKey::from_bytes(seed);
    let sig = key.sign(&rx.signed_message());
    DocumentSignature {
        algorithm: "ed25519".into(),
        public_key_hex: hex::encode(key.verifying_key().to_bytes()),
        signature_hex: hex::encode(sig.to_bytes()),
    }
}

/// Whether the prescription's signature covers what it says now.
pub fn verify(rx: &Prescription) -> bool {
    let sig = &rx.signature;
    let Some(key) = hex::decode(&sig.public_key_hex).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
        return false;
    };
    let Some(bytes) = hex::decode(&sig.signature_hex).ok().and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    VerifyingKey::from_bytes(&key).is_ok_and(|k| k.verify(&rx.signed_message(), &Signature::from_bytes(&bytes)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carelens_domain::{Allergy, AllergySeverity, Dose, EntryId, HealthId, MedicationStatement, ProviderId, Source};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn entry(n: u128, kind: HistoryKind) -> HistoryEntry {
        HistoryEntry::new(EntryId::from_u128(n), HealthId::from_number(1), d(2025, 1, 1), Source::synthetic(), kind)
            .unwrap()
    }

    fn med(code: &str, name: &str, end: Option<NaiveDate>) -> HistoryKind {
        HistoryKind::Medication(MedicationStatement {
            code: code.parse().unwrap(),
            display: name.into(),
            dose: Dose { amount: 1.0, unit: "tablet".into(), frequency: "1-0-0".into() },
            start: d(2025, 1, 1),
            end,
        })
    }

    fn rx(code: &str) -> Prescription {
        let (patient, provider) = (HealthId::from_number(1), ProviderId::from_number(1));
        let mut p = carelens_store::conformance::fixtures::prescription(1, &patient, &provider, d(2026, 3, 1), 10, 1);
        p.drug = code.parse().unwrap();
        p.display = "x".into();
        p.strength = "500 mg".into();
        p.dose.frequency = "1-0-1".into();
        p.signature = sign(&[3; 32], &p);
        p
    }

    #[test]
    fn every_table_row_parses_into_atc_prefixes() {
        let t = interactions();
        assert_eq!(t.len(), 25);
        for i in t {
            assert!(i.a.parse::<AtcCode>().is_ok() && i.b.parse::<AtcCode>().is_ok(), "{} {}", i.a, i.b);
            assert!(!i.effect.is_empty() && !i.advice.is_empty());
        }
    }

    #[test]
    fn allergies_interactions_and_duplicates_are_found() {
        let today = d(2026, 3, 1);
        let history = vec![
            entry(
                1,
                HistoryKind::Allergy(Allergy {
                    substance: "Penicillin".into(),
                    substance_code: Some("J01CE02".parse().unwrap()),
                    reaction: "hives".into(),
                    severity: AllergySeverity::Severe,
                }),
            ),
            entry(2, med("B01AA03", "Warfarin", None)),
            entry(3, med("M01AE01", "Ibuprofen", Some(d(2025, 2, 1)))), // no longer taken
        ];
        let w = check(&"J01CA04".parse().unwrap(), "Amoxicillin", &history, &[], today);
        assert_eq!(w.iter().map(|w| (w.kind, w.severity)).collect::<Vec<_>>(), vec![("allergy", Severity::Major)]);
        let w = check(&"J01DC02".parse().unwrap(), "Cefuroxime", &history, &[], today);
        assert_eq!((w[0].kind, w[0].severity), ("allergy", Severity::Moderate), "cross-reactivity");
        let w = check(&"M01AE02".parse().unwrap(), "Naproxen", &history, &[], today);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].id.starts_with("interaction:B01AA+M01A") && w[0].severity == Severity::Major, "{w:?}");
        let w = check(&"B01AA04".parse().unwrap(), "Phenprocoumon", &history, &[], today);
        assert_eq!(w[0].kind, "duplicate_therapy");
        assert!(check(&"C10AA01".parse().unwrap(), "Simvastatin", &history, &[], today).is_empty());
        // Active prescriptions count as current drugs.
        let clari = rx("J01FA09");
        let w = check(&"C10AA01".parse().unwrap(), "Simvastatin", &[], &[clari], today);
        assert_eq!((w.len(), w[0].severity), (1, Severity::Major));
    }

    #[test]
    fn signatures_cover_what_was_prescribed() {
        let p = rx("C10AA01");
        assert!(verify(&p));
        let mut changed = p.clone();
        changed.strength = "80 mg".into();
        assert!(!verify(&changed), "a changed strength breaks the signature");
        let mut filled = p.clone();
        filled.dispensings.push(carelens_domain::Dispensing { at: chrono::Utc::now(), refill: false });
        assert!(verify(&filled), "dispensing is not part of what was signed");
    }
}
