//! Clinical code systems: ICD-10 (diagnoses), LOINC (observations), ATC (medications,
//! vaccines) and CVX (vaccines). Format is checked at construction; LOINC check digits too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result, invalid};

macro_rules! code_type {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self> {
                $check(s.trim()).map(Self)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self> {
                s.parse()
            }
        }

        impl TryFrom<&str> for $name {
            type Error = DomainError;
            fn try_from(s: &str) -> Result<Self> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(c: $name) -> String {
                c.0
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

code_type!(
    /// ICD-10 (WHO / ICD-10-GM) code: letter, two digits (the second may be a letter for
    /// a few chapters, e.g. `U07`), optional `.` and 1–4 subcategory characters: `E11.9`.
    Icd10Code,
    check_icd10
);
code_type!(
    /// LOINC code `NNNNN-C` with its mod-10 check digit: `4548-4` (HbA1c).
    LoincCode,
    check_loinc
);
code_type!(
    /// ATC code at any level from 1 (`A`) to 5 (`A10BA02`).
    AtcCode,
    check_atc
);
code_type!(
    /// CDC CVX vaccine code: 1–3 digits.
    CvxCode,
    check_cvx
);

fn check_icd10(s: &str) -> Result<String> {
    let upper = s.to_ascii_uppercase();
    let b = upper.as_bytes();
    let head_ok = b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_alphanumeric();
    let tail_ok = match &b.get(3..) {
        None | Some([]) => true,
        Some([b'.', rest @ ..]) => (1..=4).contains(&rest.len()) && rest.iter().all(u8::is_ascii_alphanumeric),
        Some(_) => false,
    };
    if head_ok && tail_ok {
        Ok(upper)
    } else {
        Err(invalid("icd10", "unknown ICD-10 format; expected e.g. `E11` or `E11.9`"))
    }
}

fn check_loinc(s: &str) -> Result<String> {
    let Some((num, check)) = s.split_once('-') else {
        return Err(invalid("loinc", "expected `NNNNN-C`"));
    };
    if num.is_empty() || num.len() > 7 || !num.bytes().all(|b| b.is_ascii_digit()) || check.len() != 1 {
        return Err(invalid("loinc", "expected `NNNNN-C`"));
    }
    let expected = loinc_check_digit(num);
    if check.as_bytes()[0] != b'0' + expected {
        return Err(invalid("loinc", "check digit does not match"));
    }
    Ok(s.to_owned())
}

/// LOINC's mod-10 (Luhn) check digit.
fn loinc_check_digit(num: &str) -> u8 {
    let mut sum = 0u32;
    for (i, b) in num.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 {
            let x = d * 2;
            x / 10 + x % 10
        } else {
            d
        };
    }
    ((10 - sum % 10) % 10) as u8
}

fn check_atc(s: &str) -> Result<String> {
    let upper = s.to_ascii_uppercase();
    let b = upper.as_bytes();
    // Level lengths: 1, 3, 4, 5, 7. Pattern: L DD L L DD.
    let pattern: &[fn(&u8) -> bool] = &[
        u8::is_ascii_uppercase,
        u8::is_ascii_digit,
        u8::is_ascii_digit,
        u8::is_ascii_uppercase,
        u8::is_ascii_uppercase,
        u8::is_ascii_digit,
        u8::is_ascii_digit,
    ];
    let ok = matches!(b.len(), 1 | 3 | 4 | 5 | 7) && b.iter().zip(pattern).all(|(c, f)| f(c));
    if ok { Ok(upper) } else { Err(invalid("atc", "unknown ATC format; expected e.g. `A10BA02`")) }
}

fn check_cvx(s: &str) -> Result<String> {
    if (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(invalid("cvx", "expected 1-3 digits"))
    }
}

impl Icd10Code {
    /// The three-character category, e.g. `E11` for `E11.9`.
    pub fn category(&self) -> &str {
        &self.0[..3]
    }

    /// The ICD-10 chapter as a Roman numeral (`IV` for E00–E90), by the WHO block ranges.
    pub fn chapter(&self) -> &'static str {
        let b = self.0.as_bytes();
        let letter = b[0];
        let num = u32::from(b[1] - b'0') * 10 + if b[2].is_ascii_digit() { u32::from(b[2] - b'0') } else { 0 };
        match (letter, num) {
            (b'A' | b'B', _) => "I",
            (b'C', _) | (b'D', 0..=48) => "II",
            (b'D', _) => "III",
            (b'E', _) => "IV",
            (b'F', _) => "V",
            (b'G', _) => "VI",
            (b'H', 0..=59) => "VII",
            (b'H', _) => "VIII",
            (b'I', _) => "IX",
            (b'J', _) => "X",
            (b'K', _) => "XI",
            (b'L', _) => "XII",
            (b'M', _) => "XIII",
            (b'N', _) => "XIV",
            (b'O', _) => "XV",
            (b'P', _) => "XVI",
            (b'Q', _) => "XVII",
            (b'R', _) => "XVIII",
            (b'S' | b'T', _) => "XIX",
            (b'V' | b'W' | b'X' | b'Y', _) => "XX",
            (b'Z', _) => "XXI",
            _ => "XXII",
        }
    }

    /// Mental and behavioural disorders (chapter V), which consent treats as sensitive.
    pub fn is_mental_health(&self) -> bool {
        self.0.starts_with('F')
    }
}

/// A vaccine, coded in CVX or ATC (German records mostly use ATC `J07…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "system", content = "code", rename_all = "lowercase")]
pub enum VaccineCode {
    Cvx(CvxCode),
    Atc(AtcCode),
}

/// What carelens knows about a lab test: its unit, physically possible range and the usual
/// adult reference range. Used to reject impossible values and by the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabDef {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    /// Values outside `[min_possible, max_possible]` cannot be measured and are rejected.
    pub min_possible: f64,
    pub max_possible: f64,
    pub ref_low: f64,
    pub ref_high: f64,
}

const LABS: &[LabDef] = &[
    LabDef {
        loinc: "4548-4",
        display: "Hemoglobin A1c/Hemoglobin.total in Blood",
        unit: "%",
        min_possible: 2.0,
        max_possible: 25.0,
        ref_low: 4.0,
        ref_high: 5.6,
    },
    LabDef {
        loinc: "2345-7",
        display: "Glucose [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        min_possible: 0.0,
        max_possible: 2000.0,
        ref_low: 70.0,
        ref_high: 99.0,
    },
    LabDef {
        loinc: "8480-6",
        display: "Systolic blood pressure",
        unit: "mm[Hg]",
        min_possible: 30.0,
        max_possible: 300.0,
        ref_low: 90.0,
        ref_high: 129.0,
    },
    LabDef {
        loinc: "8462-4",
        display: "Diastolic blood pressure",
        unit: "mm[Hg]",
        min_possible: 10.0,
        max_possible: 200.0,
        ref_low: 60.0,
        ref_high: 84.0,
    },
    LabDef {
        loinc: "1988-5",
        display: "C reactive protein [Mass/volume] in Serum or Plasma",
        unit: "mg/L",
        min_possible: 0.0,
        max_possible: 1000.0,
        ref_low: 0.0,
        ref_high: 5.0,
    },
    LabDef {
        loinc: "6690-2",
        display: "Leukocytes [#/volume] in Blood",
        unit: "10*3/uL",
        min_possible: 0.0,
        max_possible: 500.0,
        ref_low: 4.0,
        ref_high: 10.0,
    },
    LabDef {
        loinc: "2160-0",
        display: "Creatinine [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        min_possible: 0.0,
        max_possible: 30.0,
        ref_low: 0.6,
        ref_high: 1.2,
    },
    LabDef {
        loinc: "33914-3",
        display: "Glomerular filtration rate/1.73 sq M.predicted",
        unit: "mL/min/{1.73_m2}",
        min_possible: 0.0,
        max_possible: 200.0,
        ref_low: 90.0,
        ref_high: 150.0,
    },
    LabDef {
        loinc: "2089-1",
        display: "Cholesterol in LDL [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        min_possible: 0.0,
        max_possible: 1000.0,
        ref_low: 0.0,
        ref_high: 115.0,
    },
    LabDef {
        loinc: "19926-5",
        display: "FEV1/FVC",
        unit: "%",
        min_possible: 0.0,
        max_possible: 100.0,
        ref_low: 70.0,
        ref_high: 90.0,
    },
    LabDef {
        loinc: "44261-6",
        display: "Patient Health Questionnaire 9 item (PHQ-9) total score",
        unit: "{score}",
        min_possible: 0.0,
        max_possible: 27.0,
        ref_low: 0.0,
        ref_high: 4.0,
    },
    LabDef {
        loinc: "70274-6",
        display: "Generalized anxiety disorder 7 item (GAD-7) total score",
        unit: "{score}",
        min_possible: 0.0,
        max_possible: 21.0,
        ref_low: 0.0,
        ref_high: 4.0,
    },
    LabDef {
        loinc: "39156-5",
        display: "Body mass index (BMI) [Ratio]",
        unit: "kg/m2",
        min_possible: 5.0,
        max_possible: 150.0,
        ref_low: 18.5,
        ref_high: 24.9,
    },
    LabDef {
        loinc: "718-7",
        display: "Hemoglobin [Mass/volume] in Blood",
        unit: "g/dL",
        min_possible: 0.0,
        max_possible: 30.0,
        ref_low: 12.0,
        ref_high: 17.5,
    },
    LabDef {
        loinc: "10839-9",
        display: "Troponin I.cardiac [Mass/volume] in Serum or Plasma",
        unit: "ng/mL",
        min_possible: 0.0,
        max_possible: 1000.0,
        ref_low: 0.0,
        ref_high: 0.04,
    },
    LabDef {
        loinc: "2085-9",
        display: "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        unit: "mg/dL",
        min_possible: 0.0,
        max_possible: 300.0,
        ref_low: 40.0,
        ref_high: 90.0,
    },
];

/// The lab tests carelens knows about.
pub fn lab_catalogue() -> &'static [LabDef] {
    LABS
}

/// Looks up a lab test by LOINC code.
pub fn lab_def(code: &LoincCode) -> Option<&'static LabDef> {
    LABS.iter().find(|d| d.loinc == code.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check<T: FromStr<Err = DomainError>>(input: &str, expect_ok: bool) {
        let got = input.parse::<T>();
        assert_eq!(got.is_ok(), expect_ok, "{input}: {:?}", got.err());
    }

    #[test]
    fn icd10_formats() {
        for ok in ["E11", "E11.9", "e11.65", "U07.1", "J18.9", "S72.00", "O80", "Z34.9"] {
            check::<Icd10Code>(ok, true);
        }
        for bad in ["", "E1", "11.9", "E11.", "E11.12345", "E119", "EE1.9", "E11-9"] {
            check::<Icd10Code>(bad, false);
        }
        let e = "E1".parse::<Icd10Code>().unwrap_err();
        assert_eq!(e.to_string(), "invalid icd10: unknown ICD-10 format; expected e.g. `E11` or `E11.9`");
    }

    #[test]
    fn icd10_chapters() {
        for (code, chapter) in [
            ("A09", "I"),
            ("C50.9", "II"),
            ("D50.0", "III"),
            ("E11.9", "IV"),
            ("F32.9", "V"),
            ("H25", "VII"),
            ("H66", "VIII"),
            ("I10", "IX"),
            ("J45.9", "X"),
            ("S72.0", "XIX"),
            ("Z34", "XXI"),
            ("U07.1", "XXII"),
        ] {
            assert_eq!(code.parse::<Icd10Code>().unwrap().chapter(), chapter, "{code}");
        }
    }

    #[test]
    fn loinc_check_digits() {
        for def in lab_catalogue() {
            check::<LoincCode>(def.loinc, true);
        }
        for bad in ["4548-5", "4548", "-4", "45a8-4", "12345678-1", "4548-44"] {
            check::<LoincCode>(bad, false);
        }
    }

    #[test]
    fn atc_and_cvx() {
        for ok in ["A", "A10", "A10B", "A10BA", "A10BA02", "j07bb"] {
            check::<AtcCode>(ok, true);
        }
        for bad in ["", "A1", "A10BA0", "110BA02", "A10BA02X", "A10B1"] {
            check::<AtcCode>(bad, false);
        }
        check::<CvxCode>("140", true);
        check::<CvxCode>("1400", false);
        check::<CvxCode>("14a", false);
    }
}
