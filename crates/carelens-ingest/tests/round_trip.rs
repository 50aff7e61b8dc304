//! Ingest → object store → load → preprocess gives the same tensors from local files and
//! from S3 (a real s3s-fs server), bit for bit, and the same as preprocessing the source file.

#![allow(clippy::unwrap_used)]

use carelens_domain::{Category, HistoryKind, ImageFinding, Validate};
use carelens_imaging::{DicomFile, Intensity, Limits, PreprocessSpec};
use carelens_ingest::{IngestOptions, Silent, collect_files, ingest};
use carelens_phantom::{StudyKind, StudySpec, render, uid};
use carelens_store::conformance::fixtures;
use carelens_store::{HistoryFilter, LocalObjects, ObjectStore, S3Config, S3Objects, SqliteStore, Store, WriteBatch};
use carelens_testkit::S3Server;
use ndarray::Array3;

fn tensor(bytes: &[u8]) -> Array3<f32> {
    let file = DicomFile::open(std::path::Path::new("object"), bytes, &Limits::DEFAULT).unwrap();
    let spec = PreprocessSpec { intensity: Intensity::Dicom, ..PreprocessSpec::xray(224) };
    spec.apply(&file.frame(0).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_s3_give_identical_tensors() {
    let Some(server) = S3Server::start() else { return };
    server.create_bucket("images");
    let dir = tempfile::tempdir().unwrap();
    let incoming = dir.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let patient = fixtures::patient(3);
    patient.validate().unwrap();
    let kinds = [
        (StudyKind::ChestXray, vec![ImageFinding::Consolidation]),
        (StudyKind::ChestCt, vec![ImageFinding::LungNodule]),
        (StudyKind::BrainMr, vec![]),
    ];
    let mut sources = Vec::new();
    for (i, (kind, findings)) in kinds.into_iter().enumerate() {
        let spec = StudySpec {
            patient_id: patient.id.as_str().into(),
            patient_name: "Family3^Given3".into(),
            birth_date: patient.birth_date,
            sex: 'M',
            study_uid: uid(&["round-trip", &i.to_string()]),
            date: fixtures::date(2026, 2, 1 + i as u32),
            kind,
            findings,
            seed: i as u64,
        };
        for (n, inst) in render(&spec).unwrap().into_iter().enumerate() {
            let path = incoming.join(format!("{i}-{n}.dcm"));
            std::fs::write(&path, &inst.bytes).unwrap();
            sources.push((inst.sop_instance_uid, tensor(&inst.bytes)));
        }
    }

    let local = LocalObjects::open(dir.path().join("objects")).unwrap();
    let s3 = S3Objects::connect(S3Config {
        prefix: "carelens/".into(),
        ..S3Config::s3_compatible(&server.endpoint(), "images", &server.access_key, &server.secret_key)
    })
    .await
    .unwrap();
    let backends: [(&str, &dyn ObjectStore); 2] = [("local", &local), ("s3", &s3)];
    let mut per_backend = Vec::new();
    for (name, objects) in backends {
        let store = SqliteStore::open(dir.path().join(format!("{name}.sqlite"))).unwrap();
        store.apply(WriteBatch { patients: vec![patient.clone()], ..Default::default() }).await.unwrap();
        let files = collect_files(std::slice::from_ref(&incoming), &Limits::DEFAULT).unwrap();
        let report = ingest(files, &IngestOptions::default(), &store, objects, &Silent).await.unwrap();
        assert_eq!((report.ingested, report.failed), (sources.len(), 0), "{name}: {:?}", report.files);
        // Load every instance back from the object store and preprocess it.
        let filter = HistoryFilter { categories: vec![Category::Imaging], ..HistoryFilter::default() };
        let mut tensors = Vec::new();
        for entry in store.history(&patient.id, &filter).await.unwrap() {
            let HistoryKind::ImagingStudy(study) = entry.kind else { unreachable!() };
            for inst in study.instances {
                let bytes = objects.get(&inst.object_key).await.unwrap();
                tensors.push((inst.sop_instance_uid, tensor(&bytes)));
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        per_backend.push(tensors);
    }
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(per_backend[0].len(), sources.len());
    assert!(per_backend[0] == per_backend[1], "local and S3 tensors differ");
    assert!(per_backend[0] == sources, "stored originals preprocess like the source files");
}
