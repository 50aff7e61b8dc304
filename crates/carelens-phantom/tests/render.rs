//! Rendered studies are valid DICOM that carelens decodes, with the right geometry, units and
//! labels. Set CARELENS_PREVIEW_DIR to also write PNG previews to look at.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use carelens_domain::ImageFinding;
use carelens_imaging::{DicomFile, Intensity, Limits, PreprocessSpec};
use carelens_phantom::{SLICES, StudyKind, StudySpec, render, uid};
use chrono::NaiveDate;

fn spec(kind: StudyKind, findings: Vec<ImageFinding>, seed: u64) -> StudySpec {
    StudySpec {
        patient_id: "CLH0000000001".into(),
        patient_name: "Muster^Erika".into(),
        birth_date: NaiveDate::from_ymd_opt(1961, 4, 2).unwrap(),
        sex: 'F',
        study_uid: uid(&["study", &seed.to_string(), &format!("{kind:?}")]),
        date: NaiveDate::from_ymd_opt(2026, 5, 4).unwrap(),
        kind,
        findings,
        seed,
    }
}

fn preview(name: &str, file: &DicomFile) {
    let Some(dir) = std::env::var_os("CARELENS_PREVIEW_DIR") else { return };
    let img = file.frame(0).unwrap();
    let spec = PreprocessSpec { intensity: Intensity::Dicom, mean: 0.0, std: 1.0, ..PreprocessSpec::xray(256) };
    let t = spec.apply(&img).unwrap();
    let buf: Vec<u8> = t.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8).collect();
    let out = image::GrayImage::from_raw(256, 256, buf).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    out.save(Path::new(&dir).join(format!("{name}.png"))).unwrap();
}

#[test]
fn every_kind_renders_valid_dicom_with_labels() {
    use ImageFinding::*;
    let cases = [
        (StudyKind::ChestXray, vec![], 1),
        (StudyKind::ChestXray, vec![Consolidation], 1),
        (StudyKind::ChestXray, vec![PleuralEffusion], 1),
        (StudyKind::ChestXray, vec![Cardiomegaly], 1),
        (StudyKind::ChestXray, vec![LungNodule], 1),
        (StudyKind::ChestCt, vec![LungNodule, Consolidation], SLICES),
        (StudyKind::AbdomenCt, vec![KidneyStone], SLICES),
        (StudyKind::BrainMr, vec![BrainMass], SLICES),
        (StudyKind::BrainMr, vec![], SLICES),
    ];
    for (n, (kind, findings, images)) in cases.into_iter().enumerate() {
        let s = spec(kind, findings.clone(), n as u64);
        let out = render(&s).unwrap();
        assert_eq!(out.len(), images, "{kind:?}");
        assert_eq!(render(&s).unwrap()[0].bytes, out[0].bytes, "deterministic");
        let mut labelled = std::collections::BTreeSet::new();
        for (i, inst) in out.iter().enumerate() {
            let path = Path::new("phantom.dcm");
            let file = DicomFile::open(path, &inst.bytes, &Limits::DEFAULT).unwrap();
            assert_eq!(file.info.patient_id.as_deref(), Some("CLH0000000001"));
            assert_eq!(file.info.issuer_of_patient_id.as_deref(), Some("CARELENS"));
            assert_eq!(file.info.study_instance_uid, s.study_uid);
            assert_eq!(file.info.sop_instance_uid, inst.sop_instance_uid);
            assert!(file.info.sop_instance_uid.len() <= 64);
            let img = file.frame(0).unwrap();
            let (lo, hi) = img.pixels.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            match kind {
                StudyKind::ChestCt | StudyKind::AbdomenCt => {
                    // Hounsfield units after the rescale, whether stored signed or unsigned.
                    assert!(
                        (-1100.0..=-900.0).contains(&img.pixels[[0, 0, 0]]),
                        "air corner {}",
                        img.pixels[[0, 0, 0]]
                    );
                    assert!(hi > 400.0, "bone present: {hi}");
                }
                _ => assert!(lo >= 0.0 && hi <= 4095.0 && hi > lo, "{lo}..{hi}"),
            }
            labelled.extend(inst.findings.iter().copied());
            if i == images / 2 || images == 1 {
                let label: Vec<&str> = inst.findings.iter().map(|f| f.as_str()).collect();
                preview(
                    &format!("{n:02}-{kind:?}-{}", if label.is_empty() { "normal".into() } else { label.join("+") }),
                    &file,
                );
            }
        }
        // Every finding is labelled on at least one image, and nothing else is.
        assert_eq!(
            labelled.into_iter().collect::<Vec<_>>(),
            {
                let mut f = findings;
                f.sort();
                f
            },
            "{kind:?}"
        );
    }
}
