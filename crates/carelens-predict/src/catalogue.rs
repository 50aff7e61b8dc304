//! Which diagnosis each image finding is evidence for.
//!
//! An image model predicts findings (consolidation, cardiomegaly, …), a doctor wants
//! diagnoses. Each finding has its own ICD-10 code (where the finding is the diagnosis, as
//! consolidation is for pneumonia, or an imaging-finding code such as R91) and may support
//! further diagnoses whose stack then sees it as one more source:
//!
//! | finding | own code | also evidence for | why |
//! |---|---|---|---|
//! | consolidation | J18 pneumonia | | the radiological sign of pneumonia |
//! | pleural_effusion | J90 | J18 | parapneumonic effusions |
//! | cardiomegaly | I51.7 | I25 | ischaemic cardiomyopathy enlarges the heart |
//! | lung_nodule | R91 | | an imaging finding in its own right |
//! | kidney_stone | N20 | N18 | stones and chronic kidney disease go together |
//! | brain_mass | R90.0 | | an imaging finding in its own right |
//!
//! A history model predicts the ICD-10 category of its target column (`diagnosis_E11` →
//! E11). The stack learns how much each source is worth; this table only says which sources
//! it may look at.

use carelens_domain::Condition;

pub struct FindingCode {
    pub finding: &'static str,
    pub code: &'static str,
    pub display: &'static str,
    pub supports: &'static [&'static str],
}

pub const FINDINGS: [FindingCode; 6] = [
    FindingCode { finding: "consolidation", code: "J18", display: "Pneumonia, organism unspecified", supports: &[] },
    FindingCode {
        finding: "pleural_effusion",
        code: "J90",
        display: "Pleural effusion, not elsewhere classified",
        supports: &["J18"],
    },
    FindingCode { finding: "cardiomegaly", code: "I51.7", display: "Cardiomegaly", supports: &["I25"] },
    FindingCode {
        finding: "lung_nodule",
        code: "R91",
        display: "Abnormal findings on diagnostic imaging of lung",
        supports: &[],
    },
    FindingCode { finding: "kidney_stone", code: "N20", display: "Calculus of kidney and ureter", supports: &["N18"] },
    FindingCode {
        finding: "brain_mass",
        code: "R90.0",
        display: "Intracranial space-occupying lesion on imaging",
        supports: &[],
    },
];

pub fn finding(label: &str) -> Option<&'static FindingCode> {
    FINDINGS.iter().find(|f| f.finding == label)
}

/// Every diagnosis code an image label is evidence for (own code first).
pub fn codes_for_finding(label: &str) -> Vec<&'static str> {
    finding(label).map(|f| std::iter::once(f.code).chain(f.supports.iter().copied()).collect()).unwrap_or_default()
}

/// The ICD-10 category a history model predicts, from its target column.
pub fn code_for_target(target: &str) -> Option<String> {
    let code = target.strip_prefix("diagnosis_")?;
    let b = code.as_bytes();
    (b.len() == 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_alphanumeric())
        .then(|| code.to_owned())
}

/// A human name for a code: the modelled condition's, a finding's, else the code itself.
pub fn display(code: &str) -> String {
    if let Some(c) = Condition::ALL.into_iter().find(|c| c.icd10().as_str() == code) {
        return c.display().to_owned();
    }
    FINDINGS.iter().find(|f| f.code == code).map_or_else(|| code.to_owned(), |f| f.display.to_owned())
}

/// The modelled condition recorded under `code`, if any (its ground truth labels the stack).
pub fn condition(code: &str) -> Option<Condition> {
    Condition::ALL.into_iter().find(|c| c.icd10().as_str() == code)
}

/// Whether a recorded diagnosis code (e.g. `J18.9`) falls under a predicted code (`J18`).
pub fn covers(predicted: &str, recorded: &str) -> bool {
    recorded.starts_with(predicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_consistent() {
        for f in &FINDINGS {
            assert!(carelens_domain::ImageFinding::ALL.iter().any(|g| g.as_str() == f.finding), "{}", f.finding);
            assert!(f.code.parse::<carelens_domain::Icd10Code>().is_ok(), "{}", f.code);
            for s in f.supports {
                assert!(condition(s).is_some(), "{s} is a modelled condition");
            }
        }
        assert_eq!(codes_for_finding("pleural_effusion"), ["J90", "J18"]);
        assert_eq!(code_for_target("diagnosis_E11").as_deref(), Some("E11"));
        assert_eq!(code_for_target("diagnosis"), None);
        assert_eq!(code_for_target("malignant"), None);
        assert_eq!(display("E11"), "Type 2 diabetes mellitus");
        assert_eq!(display("R91"), "Abnormal findings on diagnostic imaging of lung");
        assert!(covers("J18", "J18.9") && covers("I51.7", "I51.7") && !covers("I51.7", "I51.8"));
    }
}
