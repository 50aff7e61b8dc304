//! Signed, encrypted documents against tampering, on the embedded backends (SQLite + local
//! objects) and on MongoDB + S3 (s3s-fs): stored bytes edited on disk behind the object
//! store's back, and document records rewritten, are each reported as tampered (with what) or
//! as an unknown signer; uploads with forged, replayed or unregistered signatures are refused;
//! key rotation keeps everything readable with the new key alone.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carelens_domain::{DocumentKind, DocumentRef, HealthId, Role, User, UserId};
use carelens_records::documents::{self, DocumentError, NewDocument, Verdict};
use carelens_records::keys::{Keyring, MasterKey};
use carelens_store::{LocalObjects, MongoStore, ObjectStore, SqliteStore, Store};

struct Backend {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    /// Where the object bytes lie on disk.
    object_root: PathBuf,
}

fn user(id: u128, name: &str, role: Role) -> User {
    User {
        id: UserId::from_u128(id),
        username: name.into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
        provider: Some(carelens_domain::ProviderId::from_number(1)),
        patient: None,
        created_at: chrono::Utc::now(),
        disabled: false,
        email: None,
        signing_keys: vec![],
    }
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {text}\n%%EOF\n").into_bytes()
}

fn upload(patient: u64, bytes: Vec<u8>) -> NewDocument {
    NewDocument {
        patient: HealthId::from_number(patient),
        kind: DocumentKind::LabReport,
        content_type: "application/pdf".into(),
        title: "Blood count".into(),
        bytes,
        signature: None,
    }
}

/// The file holding exactly these bytes under `root`.
fn file_with(root: &Path, bytes: &[u8]) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b == bytes) {
                return p;
            }
        }
    }
    panic!("no file under {} holds the object", root.display());
}

async fn run(b: Backend) {
    let (store, objects) = (b.store.as_ref(), b.objects.as_ref());
    let keys = Keyring::new(MasterKey::new([11; 32]), vec![]);
    let doctor = user(1, "dr.sign", Role::Doctor);
    let client = user(2, "dr.client", Role::Doctor);
    store.put_user(&doctor).await.unwrap();
    store.put_user(&client).await.unwrap();
    // Rotation and verification walk the patients, so the documents' patients exist.
    let patients = (1..=4).map(carelens_store::conformance::fixtures::patient).collect();
    store.apply(carelens_store::WriteBatch { patients, ..Default::default() }).await.unwrap();

    // Server-held key: made on the first upload, stored only wrapped.
    let a = documents::store_document(store, objects, &keys, &doctor.id, upload(1, pdf("a"))).await.unwrap();
    let b_doc = documents::store_document(store, objects, &keys, &doctor.id, upload(1, pdf("b"))).await.unwrap();
    let stored_user = store.get_user(&doctor.id).await.unwrap().unwrap();
    assert_eq!(stored_user.signing_keys.len(), 1, "one key, reused");
    assert!(stored_user.signing_keys[0].wrapped_seed.is_some());
    let ciphertext = objects.get(&a.object_key).await.unwrap();
    assert!(!ciphertext.starts_with(b"%PDF"), "stored encrypted");
    assert_eq!(documents::read_document(objects, &keys, &a).await.unwrap(), pdf("a"));
    assert_eq!(documents::verify_document(store, objects, &keys, &a).await.unwrap(), Verdict::Valid);

    // Uploads that must be refused.
    let err = documents::store_document(store, objects, &keys, &doctor.id, upload(1, pdf("a"))).await.unwrap_err();
    assert!(matches!(err, DocumentError::Duplicate(id) if id == a.id), "replayed upload");
    let seed = [5u8; 32];
    let mut signed = upload(3, pdf("client"));
    let sha = documents::sha256_hex(&signed.bytes);
    signed.signature = Some(documents::sign(&seed, &signed.patient, &sha));
    let err = documents::store_document(store, objects, &keys, &client.id, signed.clone()).await.unwrap_err();
    assert!(matches!(err, DocumentError::UnknownSigner), "key not registered yet: {err}");
    let mut client_user = store.get_user(&client.id).await.unwrap().unwrap();
    documents::register_public_key(store, &mut client_user, &documents::public_key_hex(&seed)).await.unwrap();
    let mut replayed = signed.clone();
    replayed.patient = HealthId::from_number(4);
    let err = documents::store_document(store, objects, &keys, &client.id, replayed).await.unwrap_err();
    assert!(matches!(err, DocumentError::BadSignature(_)), "signature replayed for another patient: {err}");
    let c = documents::store_document(store, objects, &keys, &client.id, signed).await.unwrap();
    assert_eq!(documents::verify_document(store, objects, &keys, &c).await.unwrap(), Verdict::Valid);
    assert!(store.get_user(&client.id).await.unwrap().unwrap().signing_keys[0].wrapped_seed.is_none(), "client-held");

    let verdict = |d: DocumentRef| {
        let keys = keys.clone();
        async move { documents::verify_document(store, objects, &keys, &d).await.unwrap() }
    };
    let tampered = |v: Verdict, what: &str| match v {
        Verdict::Tampered(why) => assert!(why.contains(what), "{why}"),
        other => panic!("expected tampered ({what}), got {other:?}"),
    };

    // 1. The stored bytes edited on disk.
    let path = file_with(&b.object_root, &ciphertext);
    let mut edited = ciphertext.clone();
    let mid = edited.len() / 2;
    edited[mid] ^= 0x20;
    std::fs::write(&path, &edited).unwrap();
    tampered(verdict(a.clone()).await, "stored");
    std::fs::write(&path, &ciphertext).unwrap();
    assert_eq!(verdict(a.clone()).await, Verdict::Valid, "restored");

    // 2. The record's digest changed (say, to pass off other content): the signature fails.
    let mut d = a.clone();
    d.sha256 = documents::sha256_hex(b"something else");
    store.put_document(&d).await.unwrap();
    tampered(verdict(d).await, "signature");

    // 3. Re-signed by someone else's key: an unknown signer.
    let mut d = b_doc.clone();
    d.signature = Some(documents::sign(&[66; 32], &d.patient, &d.sha256));
    store.put_document(&d).await.unwrap();
    assert_eq!(verdict(d).await, Verdict::UnknownSigner);

    // 4. The signature bytes altered.
    let mut d = c.clone();
    let sig = d.signature.as_mut().unwrap();
    let flipped = if sig.signature_hex.starts_with('0') { "1" } else { "0" };
    sig.signature_hex.replace_range(0..1, flipped);
    store.put_document(&d).await.unwrap();
    tampered(verdict(d).await, "signature");

    // 5. Another document's data key swapped in: keys are bound to their document.
    let mut d = c.clone();
    d.encryption = b_doc.encryption.clone();
    store.put_document(&d).await.unwrap();
    tampered(verdict(d).await, "ciphertext");

    // 6. The stored object deleted.
    let other = documents::store_document(store, objects, &keys, &doctor.id, upload(2, pdf("gone"))).await.unwrap();
    std::fs::remove_file(file_with(&b.object_root, &objects.get(&other.object_key).await.unwrap())).unwrap();
    tampered(verdict(other).await, "object");

    // Rotation: re-wrap everything under a new master key; the new key alone reads it.
    store.put_document(&a).await.unwrap();
    store.put_document(&c).await.unwrap();
    let rotating = Keyring::new(MasterKey::new([12; 32]), vec![MasterKey::new([11; 32])]);
    let r = documents::rotate(store, &rotating).await.unwrap();
    assert_eq!((r.documents_rewrapped, r.signing_keys_rewrapped), (4, 1), "{r:?}");
    assert_eq!(documents::rotate(store, &rotating).await.unwrap().documents_rewrapped, 0, "idempotent");
    let new_only = Keyring::new(MasterKey::new([12; 32]), vec![]);
    let a_now = store.get_document(&a.id).await.unwrap().unwrap();
    assert_eq!(a_now.object_key, a.object_key, "the ciphertext was not rewritten");
    assert_eq!(documents::verify_document(store, objects, &new_only, &a_now).await.unwrap(), Verdict::Valid);
    assert_eq!(documents::read_document(objects, &new_only, &a_now).await.unwrap(), pdf("a"));
    // The doctor's server-held key still signs after rotation.
    documents::store_document(store, objects, &new_only, &doctor.id, upload(1, pdf("after"))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn document_tampering_is_found_on_the_embedded_backends() {
    let dir = tempfile::tempdir().unwrap();
    let objects = LocalObjects::open(dir.path().join("objects")).unwrap();
    let root = objects.root().to_path_buf();
    run(Backend {
        store: Arc::new(SqliteStore::open(dir.path().join("s.sqlite")).unwrap()),
        objects: Arc::new(objects),
        object_root: root,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn document_tampering_is_found_on_mongodb_and_s3() {
    let Some(mongo) = carelens_testkit::MongoServer::start().await else { return };
    let Some(s3) = carelens_testkit::S3Server::start() else { return };
    s3.create_bucket("docs");
    let objects = carelens_store::S3Objects::connect(carelens_store::S3Config::s3_compatible(
        &s3.endpoint(),
        "docs",
        &s3.access_key,
        &s3.secret_key,
    ))
    .await
    .unwrap();
    run(Backend {
        store: Arc::new(MongoStore::connect(&mongo.url("docs")).await.unwrap()),
        objects: Arc::new(objects),
        object_root: s3.data_dir().join("docs"),
    })
    .await;
}
