//! De-identification for exports and training sets, after DICOM PS3.15 Annex E, Basic
//! Application Level Confidentiality Profile, with the Retain Longitudinal Temporal
//! Information with Modified Dates and Retain Patient Characteristics options:
//!
//! - PatientID → a keyed pseudonym (the same patient always gets the same one under the same
//!   secret), PatientName → `ANON^<pseudonym>`, Issuer of Patient ID → `CARELENS-DEID`;
//! - every other person name (PN) emptied; birth date emptied;
//! - every date (DA, and the date part of DT) shifted by a per-patient offset, so intervals
//!   between a patient's studies survive;
//! - every UID that is not a standard one (`1.2.840.10008.…`) remapped by keyed hash, so
//!   study/series/instance structure and references survive consistently;
//! - identifying text attributes (institution, addresses, IDs, comments, descriptions,
//!   device serials …), private elements and overlay/curve groups removed;
//! - Patient Identity Removed = YES, the method recorded;
//! - an image with Burned In Annotation = YES is refused (its pixels carry text).
//!
//! The secret comes from the caller (the CLI reads it from the environment).

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

use crate::{DicomFile, ImagingError, Result};

pub struct DeidConfig<'a> {
    /// Key for pseudonyms, UIDs and date shifts (at least 16 bytes).
    pub secret: &'a [u8],
    /// Export images whose pixels carry burned-in text anyway (off by default).
    pub allow_burned_in: bool,
}

#[derive(Debug, Clone)]
pub struct Deidentified {
    pub bytes: Vec<u8>,
    pub pseudonym: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    /// Days every date moved (negative: earlier).
    pub shift_days: i64,
}

/// Identifying attributes removed outright (PS3.15 Table E.1-1 actions X/Z/D on text).
const REMOVE: &[Tag] = &[
    tags::ACCESSION_NUMBER,
    tags::INSTITUTION_NAME,
    tags::INSTITUTION_ADDRESS,
    tags::INSTITUTIONAL_DEPARTMENT_NAME,
    tags::REFERRING_PHYSICIAN_ADDRESS,
    tags::REFERRING_PHYSICIAN_TELEPHONE_NUMBERS,
    tags::STATION_NAME,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::ADMITTING_DIAGNOSES_DESCRIPTION,
    tags::DERIVATION_DESCRIPTION,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_ADDRESS,
    tags::PATIENT_TELEPHONE_NUMBERS,
    tags::MILITARY_RANK,
    Tag(0x0010, 0x1090), // Medical Record Locator (retired)
    Tag(0x0010, 0x2160), // Ethnic Group (retired)
    tags::OCCUPATION,
    tags::ADDITIONAL_PATIENT_HISTORY,
    tags::PATIENT_COMMENTS,
    tags::DEVICE_SERIAL_NUMBER,
    tags::PROTOCOL_NAME,
    tags::STUDY_ID,
    tags::IMAGE_COMMENTS,
    tags::REQUEST_ATTRIBUTES_SEQUENCE,
    tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    tags::PERFORMED_PROCEDURE_STEP_ID,
    tags::CURRENT_PATIENT_LOCATION,
    tags::PATIENT_INSURANCE_PLAN_CODE_SEQUENCE,
    tags::REFERENCED_PATIENT_SEQUENCE,
    tags::CONTENT_SEQUENCE,
    tags::ORIGINAL_ATTRIBUTES_SEQUENCE,
    tags::TEXT_VALUE,
    tags::PERSON_IDENTIFICATION_CODE_SEQUENCE,
    tags::INSTITUTION_CODE_SEQUENCE,
];

/// Other Patient IDs (0010,1000), retired but common in old files.
const OTHER_PATIENT_IDS: Tag = Tag(0x0010, 0x1000);

/// UIDs kept as they are: they name classes and syntaxes, not people.
const KEEP_UID: &[Tag] = &[tags::SOP_CLASS_UID, tags::REFERENCED_SOP_CLASS_UID, tags::TRANSFER_SYNTAX_UID];

fn hmac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let mut inner = Sha256::new();
    inner.update(key.map(|b| b ^ 0x36));
    for p in parts {
        inner.update((p.len() as u64).to_le_bytes());
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The pseudonym for a patient (PatientID + issuer) under `secret`.
pub fn pseudonym(secret: &[u8], patient_id: &str, issuer: &str) -> String {
    let h = hmac(secret, &[b"patient", patient_id.as_bytes(), issuer.as_bytes()]);
    format!("ANON{}", hex_upper(&h[..8]))
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// A non-standard UID remapped under `secret` (`2.25.<128-bit>`, PS3.5 B.2).
pub fn remap_uid(secret: &[u8], uid: &str) -> String {
    if uid.starts_with("1.2.840.10008.") {
        return uid.to_owned();
    }
    let h = hmac(secret, &[b"uid", uid.as_bytes()]);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    format!("2.25.{}", u128::from_be_bytes(b) >> 1)
}

/// Days a patient's dates move: 30 to 730 days earlier.
fn shift_days(secret: &[u8], patient_id: &str, issuer: &str) -> i64 {
    let h = hmac(secret, &[b"dates", patient_id.as_bytes(), issuer.as_bytes()]);
    -(30 + (u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) % 701) as i64)
}

fn shift_da(v: &str, days: i64) -> Option<String> {
    let v = v.trim();
    if v.is_empty() {
        return Some(String::new());
    }
    let d = chrono::NaiveDate::parse_from_str(v.get(..8)?, "%Y%m%d").ok()?;
    Some((d + chrono::Duration::days(days)).format("%Y%m%d").to_string())
}

struct Ctx<'a> {
    secret: &'a [u8],
    pseudonym: String,
    days: i64,
}

impl DicomFile {
    /// A de-identified copy of this file (see the module docs for what changes).
    pub fn deidentify(&self, cfg: &DeidConfig<'_>) -> Result<Deidentified> {
        if cfg.secret.len() < 16 {
            return Err(ImagingError::Spec("the de-identification secret must be at least 16 bytes".into()));
        }
        if self.info.burned_in_annotation == Some(true) && !cfg.allow_burned_in {
            return Err(ImagingError::Unsupported {
                path: self.path().to_path_buf(),
                what: "export: Burned In Annotation is YES (the pixels carry text that may identify the patient)"
                    .into(),
            });
        }
        let pid = self.info.patient_id.clone().unwrap_or_default();
        let issuer = self.info.issuer_of_patient_id.clone().unwrap_or_default();
        let ctx = Ctx {
            secret: cfg.secret,
            pseudonym: pseudonym(cfg.secret, &pid, &issuer),
            days: shift_days(cfg.secret, &pid, &issuer),
        };
        let mut obj: InMemDicomObject = (**self.object()).clone();
        clean(&mut obj, &ctx, true);
        let put = |obj: &mut InMemDicomObject, tag, vr, v: &str| {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v.to_owned())));
        };
        put(&mut obj, tags::PATIENT_ID, VR::LO, &ctx.pseudonym);
        put(&mut obj, tags::PATIENT_NAME, VR::PN, &format!("ANON^{}", ctx.pseudonym));
        put(&mut obj, tags::ISSUER_OF_PATIENT_ID, VR::LO, "CARELENS-DEID");
        put(&mut obj, tags::PATIENT_BIRTH_DATE, VR::DA, "");
        put(&mut obj, tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
        put(&mut obj, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, VR::CS, "MODIFIED");
        put(
            &mut obj,
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            "carelens: PS3.15 basic profile; dates shifted; UIDs remapped; patient characteristics kept",
        );
        let text = |obj: &InMemDicomObject, tag| {
            obj.element_opt(tag)
                .ok()
                .flatten()
                .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches('\0').to_owned()))
        };
        let sop_uid = text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
        let study_uid = text(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default();
        let series_uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        let meta = self.object().meta();
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(meta.transfer_syntax().trim_end_matches('\0'))
                    .media_storage_sop_class_uid(meta.media_storage_sop_class_uid().trim_end_matches('\0'))
                    .media_storage_sop_instance_uid(sop_uid.as_str())
                    .implementation_class_uid("2.25.208512640357917498130349395786571624451")
                    .implementation_version_name("CARELENS_0"),
            )
            .map_err(|e| ImagingError::Decode {
                path: self.path().to_path_buf(),
                format: "DICOM",
                detail: e.to_string(),
            })?;
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).map_err(|e| ImagingError::Decode {
            path: self.path().to_path_buf(),
            format: "DICOM",
            detail: format!("cannot write the de-identified file: {e}"),
        })?;
        Ok(Deidentified {
            bytes,
            pseudonym: ctx.pseudonym,
            study_uid,
            series_uid,
            sop_instance_uid: sop_uid,
            shift_days: ctx.days,
        })
    }
}

/// Applies the profile to every element, recursing into sequences.
fn clean(obj: &mut InMemDicomObject, ctx: &Ctx<'_>, top: bool) {
    let all: Vec<Tag> = obj.tags().collect();
    for tag in all {
        let Some(elem) = obj.take(tag) else { continue };
        let group = tag.group();
        if group % 2 == 1 || (0x5000..=0x60FF).contains(&group) || REMOVE.contains(&tag) || tag == OTHER_PATIENT_IDS {
            continue; // private, curves/overlays, identifying text: removed
        }
        if top && matches!(tag, tags::PATIENT_ID | tags::PATIENT_NAME | tags::ISSUER_OF_PATIENT_ID) {
            continue; // replaced by the caller
        }
        let vr = elem.vr();
        let replaced: Option<PrimitiveValue> = match (vr, elem.value()) {
            (VR::SQ, Value::Sequence(seq)) => {
                let mut items: Vec<InMemDicomObject> = seq.items().to_vec();
                for item in &mut items {
                    clean(item, ctx, false);
                }
                obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
                continue;
            }
            (VR::PN, _) => Some(PrimitiveValue::from(String::new())),
            (VR::DA, v) => {
                let shifted: Vec<String> = v
                    .to_multi_str()
                    .map(|vals| vals.iter().map(|d| shift_da(d, ctx.days).unwrap_or_default()).collect())
                    .unwrap_or_default();
                Some(PrimitiveValue::from(shifted.join("\\")))
            }
            (VR::DT, v) => {
                let shifted: Vec<String> = v
                    .to_multi_str()
                    .map(|vals| {
                        vals.iter()
                            .map(|d| {
                                shift_da(d, ctx.days)
                                    .map(|s| format!("{s}{}", d.get(8..).unwrap_or("")))
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(PrimitiveValue::from(shifted.join("\\")))
            }
            (VR::UI, v) if !KEEP_UID.contains(&tag) => {
                let mapped: Vec<String> = v
                    .to_multi_str()
                    .map(|vals| {
                        vals.iter()
                            .map(|u| u.trim_end_matches(['\0', ' ']))
                            .filter(|u| !u.is_empty())
                            .map(|u| remap_uid(ctx.secret, u))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(PrimitiveValue::from(mapped.join("\\")))
            }
            _ => None,
        };
        match replaced {
            Some(v) => {
                obj.put(DataElement::new(tag, vr, v));
            }
            None => {
                obj.put(elem);
            }
        }
    }
}
