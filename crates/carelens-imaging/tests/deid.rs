//! De-identification of synthetic studies: identifiers gone, structure and pixels kept,
//! consistent under one secret, burned-in text refused.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use carelens_domain::ImageFinding;
use carelens_imaging::{DeidConfig, DicomFile, Limits};
use carelens_phantom::{StudyKind, StudySpec, render, uid};
use chrono::NaiveDate;

fn study(patient: &str, kind: StudyKind, n: u64) -> Vec<Vec<u8>> {
    let spec = StudySpec {
        patient_id: patient.into(),
        patient_name: "Mustermann^Erika".into(),
        birth_date: NaiveDate::from_ymd_opt(1961, 4, 2).unwrap(),
        sex: 'F',
        study_uid: uid(&["deid", patient, &n.to_string()]),
        date: NaiveDate::from_ymd_opt(2026, 5, 4 + n as u32).unwrap(),
        kind,
        findings: vec![ImageFinding::LungNodule],
        seed: n,
    };
    render(&spec).unwrap().into_iter().map(|i| i.bytes).collect()
}

fn open(bytes: &[u8]) -> DicomFile {
    DicomFile::open(Path::new("x.dcm"), bytes, &Limits::DEFAULT).unwrap()
}

const SECRET: &[u8] = b"a test secret of 32 bytes ......";

#[test]
fn identifiers_go_structure_dates_and_pixels_stay() {
    let cfg = DeidConfig { secret: SECRET, allow_burned_in: false };
    let (a, b) = (study("CLH0000000001", StudyKind::ChestCt, 0), study("CLH0000000001", StudyKind::ChestXray, 5));
    let mut pseudonyms = std::collections::BTreeSet::new();
    let mut studies = std::collections::BTreeSet::new();
    let mut shifts = std::collections::BTreeSet::new();
    for bytes in a.iter().chain(&b) {
        let src = open(bytes);
        let out = src.deidentify(&cfg).unwrap();
        for secret in
            ["Mustermann", "Erika", "CLH0000000001", "19610402", "synthetic clinic", &src.info.study_instance_uid]
        {
            assert!(!out.bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} survived");
        }
        let de = open(&out.bytes);
        assert_eq!(de.info.patient_id.as_deref(), Some(out.pseudonym.as_str()));
        assert_eq!(de.info.study_instance_uid, out.study_uid);
        assert_ne!(de.info.sop_instance_uid, src.info.sop_instance_uid);
        assert_eq!(de.info.sop_class_uid, src.info.sop_class_uid, "class UIDs are kept");
        // Dates move by the patient's shift.
        let date = |f: &DicomFile| NaiveDate::parse_from_str(f.info.study_date.as_deref().unwrap(), "%Y%m%d").unwrap();
        assert_eq!((date(&de) - date(&src)).num_days(), out.shift_days);
        assert!((-730..=-30).contains(&out.shift_days));
        // Pixels untouched.
        assert_eq!(de.frame(0).unwrap().pixels, src.frame(0).unwrap().pixels);
        // Same input, same output.
        assert_eq!(src.deidentify(&cfg).unwrap().bytes, out.bytes);
        pseudonyms.insert(out.pseudonym);
        studies.insert(out.study_uid);
        shifts.insert(out.shift_days);
    }
    assert_eq!(pseudonyms.len(), 1, "one patient, one pseudonym");
    assert_eq!(shifts.len(), 1, "one patient, one date shift");
    assert_eq!(studies.len(), 2, "two studies stay two studies");

    // Another patient, another pseudonym; another secret, other UIDs.
    let other = open(&study("CLH0000000002", StudyKind::ChestXray, 1)[0]).deidentify(&cfg).unwrap();
    assert!(!pseudonyms.contains(&other.pseudonym));
    let src = open(&a[0]);
    let other_key = DeidConfig { secret: b"another secret, also long enough", allow_burned_in: false };
    let again = src.deidentify(&other_key).unwrap();
    assert_ne!(again.study_uid, src.deidentify(&cfg).unwrap().study_uid);
    assert!(src.deidentify(&DeidConfig { secret: b"short", allow_burned_in: false }).is_err());
}

#[test]
fn burned_in_annotation_is_refused_unless_allowed() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let bytes = &study("CLH0000000001", StudyKind::ChestXray, 2)[0];
    let mut obj = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(std::io::Cursor::new(bytes))
        .unwrap();
    obj.put(DataElement::new(dicom_dictionary_std::tags::BURNED_IN_ANNOTATION, VR::CS, PrimitiveValue::from("YES")));
    let mut marked = Vec::new();
    obj.write_all(&mut marked).unwrap();
    let file = open(&marked);
    let err = file.deidentify(&DeidConfig { secret: SECRET, allow_burned_in: false }).unwrap_err().to_string();
    assert!(err.contains("Burned In Annotation"), "{err}");
    assert!(file.deidentify(&DeidConfig { secret: SECRET, allow_burned_in: true }).is_ok());
}
