//! Conditions the synthetic population models, and ground-truth labels for evaluation.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::codes::Icd10Code;
use crate::ids::HealthId;

/// A condition with a disease module in the generator; the labels models learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Type2Diabetes,
    Hypertension,
    Pneumonia,
    Asthma,
    Copd,
    Depression,
    Anxiety,
    CoronaryHeartDisease,
    ChronicKidneyDisease,
    Pregnancy,
    Fracture,
}

impl Condition {
    pub const ALL: [Condition; 11] = [
        Self::Type2Diabetes,
        Self::Hypertension,
        Self::Pneumonia,
        Self::Asthma,
        Self::Copd,
        Self::Depression,
        Self::Anxiety,
        Self::CoronaryHeartDisease,
        Self::ChronicKidneyDisease,
        Self::Pregnancy,
        Self::Fracture,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Type2Diabetes => "type2_diabetes",
            Self::Hypertension => "hypertension",
            Self::Pneumonia => "pneumonia",
            Self::Asthma => "asthma",
            Self::Copd => "copd",
            Self::Depression => "depression",
            Self::Anxiety => "anxiety",
            Self::CoronaryHeartDisease => "coronary_heart_disease",
            Self::ChronicKidneyDisease => "chronic_kidney_disease",
            Self::Pregnancy => "pregnancy",
            Self::Fracture => "fracture",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The ICD-10 category the condition is recorded under.
    pub fn icd10(self) -> Icd10Code {
        let code = match self {
            Self::Type2Diabetes => "E11",
            Self::Hypertension => "I10",
            Self::Pneumonia => "J18",
            Self::Asthma => "J45",
            Self::Copd => "J44",
            Self::Depression => "F32",
            Self::Anxiety => "F41",
            Self::CoronaryHeartDisease => "I25",
            Self::ChronicKidneyDisease => "N18",
            Self::Pregnancy => "Z34",
            Self::Fracture => "T14",
        };
        Icd10Code::try_from(code).unwrap_or_else(|_| unreachable!("static code {code} is valid"))
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::Type2Diabetes => "Type 2 diabetes mellitus",
            Self::Hypertension => "Essential (primary) hypertension",
            Self::Pneumonia => "Pneumonia, organism unspecified",
            Self::Asthma => "Asthma",
            Self::Copd => "Chronic obstructive pulmonary disease",
            Self::Depression => "Depressive episode",
            Self::Anxiety => "Other anxiety disorders",
            Self::CoronaryHeartDisease => "Chronic ischaemic heart disease",
            Self::ChronicKidneyDisease => "Chronic kidney disease",
            Self::Pregnancy => "Supervision of normal pregnancy",
            Self::Fracture => "Fracture",
        }
    }
}

/// What the generator knows to be true of a synthetic patient (whether or not it was
/// recorded as a diagnosis): the label set for evaluating models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub patient: HealthId,
    pub condition: Condition,
    pub onset: NaiveDate,
    /// Whether a diagnosis was recorded in the history (undiagnosed cases are realistic).
    pub diagnosed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_has_a_code_and_round_trips() {
        for c in Condition::ALL {
            assert_eq!(Condition::parse(c.as_str()), Some(c));
            assert_eq!(c.icd10().as_str().len(), 3);
        }
    }
}
