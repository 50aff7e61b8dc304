//! The documented code mappings (`maps/*.csv`, compiled in) and the rules that put imported
//! codes into carelens's categories. See `maps/README.md` for sources and limits.

use std::collections::HashMap;
use std::sync::OnceLock;

use carelens_domain::{AtcCode, BodyPart, Icd10Code, ProcedureKind};

pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const ATC: &str = "http://www.whocc.no/atc";
pub const OPS: &str = "http://fhir.de/CodeSystem/bfarm/ops";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const DICOM_DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// What an unmapped SNOMED CT condition is stored as (its SNOMED coding is kept beside it).
pub const UNMAPPED_ICD10: &str = "R69";
/// What an unmapped RxNorm drug is stored as: ATC group V, "various" (RxNorm kept beside it).
pub const UNMAPPED_ATC: &str = "V";

struct Maps {
    snomed_icd10: HashMap<&'static str, Icd10Code>,
    rxnorm_atc: HashMap<&'static str, AtcCode>,
}

fn rows(csv: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    csv.lines().skip(1).filter(|l| !l.trim().is_empty()).filter_map(|l| {
        let mut parts = l.splitn(3, ',');
        Some((parts.next()?.trim(), parts.next()?.trim()))
    })
}

fn maps() -> &'static Maps {
    static MAPS: OnceLock<Maps> = OnceLock::new();
    MAPS.get_or_init(|| Maps {
        // The tables are checked by a unit test; a bad row would fail it, so skipping here is safe.
        snomed_icd10: rows(include_str!("../../maps/snomed_icd10.csv"))
            .filter_map(|(s, i)| Some((s, i.parse().ok()?)))
            .collect(),
        rxnorm_atc: rows(include_str!("../../maps/rxnorm_atc.csv"))
            .filter_map(|(r, a)| Some((r, a.parse().ok()?)))
            .collect(),
    })
}

/// The ICD-10 code for a SNOMED CT condition, when the table has one.
pub fn icd10_for_snomed(code: &str) -> Option<Icd10Code> {
    maps().snomed_icd10.get(code).cloned()
}

/// The ATC code for an RxNorm drug, when the table has one.
pub fn atc_for_rxnorm(code: &str) -> Option<AtcCode> {
    maps().rxnorm_atc.get(code).cloned()
}

/// Psychiatric medication (consent category mental health): antipsychotics, anxiolytics,
/// hypnotics and sedatives (N05), antidepressants (N06A) and psychostimulants (N06B).
pub fn is_psychiatric(atc: &AtcCode) -> bool {
    let c = atc.as_str();
    c.starts_with("N05") || c.starts_with("N06A") || c.starts_with("N06B")
}

/// A procedure's kind from its name: childbirth, surgery, or other procedure.
pub fn procedure_kind(display: &str) -> ProcedureKind {
    let d = display.to_ascii_lowercase();
    let childbirth = ["childbirth", "cesarean", "caesarean", "instrumental delivery", "birth of newborn"];
    if childbirth.iter().any(|k| d.contains(k)) && !d.contains("examination") {
        return ProcedureKind::Childbirth;
    }
    let surgery = [
        "ectomy",
        "otomy",
        "ostomy",
        "plasty",
        "bypass",
        "replacement",
        "transplant",
        "excision",
        "resection",
        "ligation",
        "suture",
        "extraction",
        "surgical",
        "ablation",
        "thrombectomy",
        "implant",
        "termination of pregnancy",
    ];
    if surgery.iter().any(|k| d.contains(k)) && !d.contains("care") && !d.contains("counseling") {
        return ProcedureKind::Surgery;
    }
    ProcedureKind::Procedure
}

/// A body part from an imaging series' SNOMED CT body site.
pub fn body_part_for_snomed(code: &str) -> BodyPart {
    match code {
        "51185008" | "43799004" | "51299004" | "113197003" => BodyPart::Chest,
        "69536005" | "12738006" | "774007" => BodyPart::Head,
        "818983003" | "113345001" => BodyPart::Abdomen,
        "421060004" | "122496007" => BodyPart::Spine,
        "12921003" | "816092008" => BodyPart::Pelvis,
        "24136001" | "29836001" => BodyPart::Hip,
        "72696002" => BodyPart::Knee,
        "8205005" | "74670003" => BodyPart::Wrist,
        "85562004" => BodyPart::Hand,
        "56459004" | "70258002" => BodyPart::Foot,
        _ => BodyPart::Other,
    }
}

/// A SNOMED CT body site for a body part (export).
pub fn snomed_for_body_part(part: BodyPart) -> Option<(&'static str, &'static str)> {
    Some(match part {
        BodyPart::Chest => ("51185008", "Thoracic structure"),
        BodyPart::Head => ("69536005", "Head structure"),
        BodyPart::Abdomen => ("818983003", "Abdomen"),
        BodyPart::Spine => ("421060004", "Structure of vertebral column"),
        BodyPart::Pelvis => ("12921003", "Pelvic structure"),
        BodyPart::Hip => ("24136001", "Hip joint structure"),
        BodyPart::Knee => ("72696002", "Knee region structure"),
        BodyPart::Wrist => ("8205005", "Wrist region structure"),
        BodyPart::Hand => ("85562004", "Hand structure"),
        BodyPart::Foot => ("56459004", "Foot structure"),
        BodyPart::Other => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_row_parses() {
        for (s, i) in rows(include_str!("../../maps/snomed_icd10.csv")) {
            assert!(s.bytes().all(|b| b.is_ascii_digit()), "SNOMED {s}");
            assert!(i.parse::<Icd10Code>().is_ok(), "ICD-10 {i} for SNOMED {s}");
        }
        for (r, a) in rows(include_str!("../../maps/rxnorm_atc.csv")) {
            assert!(r.bytes().all(|b| b.is_ascii_digit()), "RxNorm {r}");
            assert!(a.parse::<AtcCode>().is_ok(), "ATC {a} for RxNorm {r}");
        }
        assert_eq!(maps().snomed_icd10.len(), 121);
        assert_eq!(maps().rxnorm_atc.len(), 106);
    }

    #[test]
    fn categories_follow_the_codes() {
        assert!(icd10_for_snomed("370143000").unwrap().is_mental_health(), "major depression");
        assert!(!icd10_for_snomed("44054006").unwrap().is_mental_health(), "diabetes");
        assert!(is_psychiatric(&atc_for_rxnorm("328670").unwrap()), "sertraline");
        assert!(!is_psychiatric(&atc_for_rxnorm("316672").unwrap()), "simvastatin");
        assert_eq!(procedure_kind("Cesarean section"), ProcedureKind::Childbirth);
        assert_eq!(procedure_kind("Physical examination following birth"), ProcedureKind::Procedure);
        assert_eq!(procedure_kind("Appendectomy"), ProcedureKind::Surgery);
        assert_eq!(procedure_kind("Counseling for termination of pregnancy"), ProcedureKind::Procedure);
        assert_eq!(procedure_kind("Colonoscopy"), ProcedureKind::Procedure);
    }
}
