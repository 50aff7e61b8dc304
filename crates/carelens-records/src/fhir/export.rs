//! A patient's record → one FHIR R4 `collection` bundle (pure).
//!
//! History entries carry their carelens id (`identifier`), source and category (extensions),
//! carelens's own code first and the source system's code second, so [`super::parse_bundle`]
//! reads them back unchanged. Appointments, consents, the audit trail, documents and the
//! latest prediction set are exported for the reader; they are made in carelens, so an import
//! counts them but does not write them.

use serde_json::{Value, json};

use carelens_domain::{
    AllergySeverity, Appointment, AppointmentStatus, AuditAction, AuditEntry, AuditOutcome, BodyPart, Category,
    ClinicalStatus, Coding, ConsentGrant, DocumentRef, EntryId, Grantee, HistoryEntry, HistoryKind, InsuranceKind,
    Modality, Patient, PredictionSet, Prescription, PrescriptionStatus, ProcedureKind, RiskBand, Sex, SourceKind,
    TherapyModality, VaccineCode,
};

use super::maps::{self, ATC, CVX, DICOM_DCM, ICD10, LOINC, OPS, UCUM};
use super::{
    BODY_PART_EXT, CATEGORY_EXT, ENTRY_ID_SYSTEM, HEALTH_ID_SYSTEM, INSURANCE_EXT, PRESCRIPTION_EXT,
    PROCEDURE_KIND_SYSTEM, SEVERITY_EXT, SOURCE_EXT, THERAPY_DURATION_EXT, THERAPY_SYSTEM,
};

const PROVIDER_SYSTEM: &str = "https://carelens.dev/fhir/sid/provider-id";
const USER_SYSTEM: &str = "https://carelens.dev/fhir/sid/user-id";
const CATEGORY_SYSTEM: &str = "https://carelens.dev/fhir/CodeSystem/category";
const VISIT_TYPE_SYSTEM: &str = "https://carelens.dev/fhir/CodeSystem/visit-type";
const DOCUMENT_KIND_SYSTEM: &str = "https://carelens.dev/fhir/CodeSystem/document-kind";
const SHA256_EXT: &str = "https://carelens.dev/fhir/StructureDefinition/sha256";

/// Everything of one patient that goes into an export.
#[derive(Debug, Clone, Copy)]
pub struct RecordExport<'a> {
    pub patient: &'a Patient,
    pub entries: &'a [HistoryEntry],
    pub appointments: &'a [Appointment],
    pub consents: &'a [ConsentGrant],
    pub documents: &'a [DocumentRef],
    pub audit: &'a [AuditEntry],
    pub predictions: Option<&'a PredictionSet>,
    pub prescriptions: &'a [Prescription],
}

fn uuid_for(parts: &[&str]) -> String {
    EntryId::from_u128(super::stable_id(parts)).to_string()
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({ "system": system, "code": code });
    if let Some(d) = display.filter(|d| !d.trim().is_empty()) {
        c["display"] = json!(d);
    }
    c
}

fn concept(own: Option<Value>, source: Option<&Coding>, text: &str) -> Value {
    let mut codings: Vec<Value> = own.into_iter().collect();
    if let Some(s) = source {
        codings.push(coding(&s.system, &s.code, s.display.as_deref()));
    }
    let mut c = json!({ "coding": codings });
    if !text.trim().is_empty() {
        c["text"] = json!(text);
    }
    c
}

fn source_kind(k: SourceKind) -> &'static str {
    match k {
        SourceKind::Synthetic => "synthetic",
        SourceKind::Clinician => "clinician",
        SourceKind::Patient => "patient",
        SourceKind::Import => "import",
        SourceKind::Device => "device",
    }
}

/// The bundle for `record`: Patient first, then one resource per history entry, appointment,
/// consent, document and audit entry, and a RiskAssessment for the latest prediction set.
pub fn export_bundle(record: &RecordExport<'_>) -> Value {
    let p = record.patient;
    let patient_uuid = uuid_for(&["Patient", p.id.as_str()]);
    let subject = json!({ "reference": format!("urn:uuid:{patient_uuid}") });
    let mut entries = vec![entry_of(&patient_uuid, patient(p, &patient_uuid))];
    for e in record.entries {
        let (uuid, r) = history(e, &subject);
        entries.push(entry_of(&uuid, r));
    }
    for a in record.appointments {
        let uuid = a.id.to_string();
        entries.push(entry_of(&uuid, appointment(a, &uuid, &subject)));
    }
    for c in record.consents {
        let uuid = c.id.to_string();
        entries.push(entry_of(&uuid, consent(c, &uuid, &subject)));
    }
    for d in record.documents {
        let uuid = d.id.to_string();
        entries.push(entry_of(&uuid, document(d, &uuid, &subject)));
    }
    for a in record.audit {
        let uuid = uuid_for(&["AuditEvent", &a.seq.to_string(), &a.hash]);
        entries.push(entry_of(&uuid, audit_event(a, &uuid, &subject)));
    }
    for rx in record.prescriptions {
        let uuid = rx.id.to_string();
        entries.push(entry_of(&uuid, medication_request(rx, &uuid, &subject)));
    }
    if let Some(set) = record.predictions {
        let uuid = set.id.to_string();
        entries.push(entry_of(&uuid, risk_assessment(set, &uuid, &subject)));
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid_for(&["Bundle", p.id.as_str()]),
        "type": "collection",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "entry": entries,
    })
}

fn entry_of(uuid: &str, resource: Value) -> Value {
    json!({ "fullUrl": format!("urn:uuid:{uuid}"), "resource": resource })
}

fn patient(p: &Patient, uuid: &str) -> Value {
    let mut name = json!({ "use": "official", "family": p.name.family });
    if !p.name.given.trim().is_empty() {
        name["given"] = json!([p.name.given]);
    }
    let gender = match p.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Diverse => "other",
        Sex::Unknown => "unknown",
    };
    let r = &p.residence;
    let kind = match p.insurance.kind {
        InsuranceKind::Statutory => "statutory",
        InsuranceKind::Private => "private",
    };
    json!({
        "resourceType": "Patient",
        "id": uuid,
        "identifier": [{ "system": HEALTH_ID_SYSTEM, "value": p.id.as_str() }],
        "extension": [{
            "url": INSURANCE_EXT,
            "extension": [
                { "url": "kind", "valueCode": kind },
                { "url": "insurer", "valueString": p.insurance.insurer_id },
            ],
        }],
        "name": [name],
        "gender": gender,
        "birthDate": p.birth_date.to_string(),
        "address": [{
            "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                "extension": [
                    { "url": "latitude", "valueDecimal": r.location.lat() },
                    { "url": "longitude", "valueDecimal": r.location.lon() },
                ],
            }],
            "city": r.city,
            "state": r.region,
            "postalCode": r.postcode,
        }],
    })
}

/// Common parts of a history resource: id, carelens identifier, source and category.
fn base(kind: &str, e: &HistoryEntry, extra_ext: Vec<Value>) -> Value {
    let source = match &e.source.reference {
        Some(r) => format!("{}|{r}", source_kind(e.source.kind)),
        None => source_kind(e.source.kind).to_owned(),
    };
    let mut ext = vec![
        json!({ "url": SOURCE_EXT, "valueString": source }),
        json!({ "url": CATEGORY_EXT, "valueCode": e.category().as_str() }),
    ];
    ext.extend(extra_ext);
    json!({
        "resourceType": kind,
        "id": e.id.to_string(),
        "extension": ext,
        "identifier": [{ "system": ENTRY_ID_SYSTEM, "value": e.id.to_string() }],
    })
}

fn set(r: &mut Value, fields: Value) {
    if let (Some(o), Value::Object(f)) = (r.as_object_mut(), fields) {
        o.extend(f);
    }
}

fn history(e: &HistoryEntry, subject: &Value) -> (String, Value) {
    let date = e.date.to_string();
    let src = e.source_coding.as_ref();
    let r = match &e.kind {
        HistoryKind::Diagnosis(d) => {
            let mut r = base("Condition", e, vec![]);
            let status = match d.status {
                ClinicalStatus::Active => "active",
                ClinicalStatus::Resolved => "resolved",
            };
            set(
                &mut r,
                json!({
                    "clinicalStatus": { "coding": [coding("http://terminology.hl7.org/CodeSystem/condition-clinical", status, None)] },
                    "verificationStatus": { "coding": [coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", None)] },
                    "code": concept(Some(coding(ICD10, d.code.as_str(), None)), src, &d.display),
                    "subject": subject,
                    "onsetDateTime": date,
                }),
            );
            r
        }
        HistoryKind::Observation(o) => {
            let mut r = base("Observation", e, vec![]);
            let quantity = |v: f64| json!({ "value": v, "unit": o.unit, "system": UCUM, "code": o.unit });
            set(
                &mut r,
                json!({
                    "status": "final",
                    "code": concept(Some(coding(LOINC, o.code.as_str(), None)), src, &o.display),
                    "subject": subject,
                    "effectiveDateTime": date,
                    "valueQuantity": quantity(o.value),
                }),
            );
            if let Some(range) = o.reference_range {
                r["referenceRange"] = json!([{ "low": quantity(range.low), "high": quantity(range.high) }]);
            }
            r
        }
        HistoryKind::Vaccination(v) => {
            let mut r = base("Immunization", e, vec![]);
            let own = match &v.vaccine {
                VaccineCode::Cvx(c) => coding(CVX, c.as_str(), None),
                VaccineCode::Atc(c) => coding(ATC, c.as_str(), None),
            };
            set(
                &mut r,
                json!({
                    "status": "completed",
                    "vaccineCode": concept(Some(own), src, &v.display),
                    "patient": subject,
                    "occurrenceDateTime": date,
                    "protocolApplied": [{ "doseNumberPositiveInt": v.dose_number }],
                }),
            );
            r
        }
        HistoryKind::Allergy(a) => {
            let sev = match a.severity {
                AllergySeverity::Mild => "mild",
                AllergySeverity::Moderate => "moderate",
                AllergySeverity::Severe => "severe",
            };
            let mut r = base("AllergyIntolerance", e, vec![json!({ "url": SEVERITY_EXT, "valueCode": sev })]);
            let own = a.substance_code.as_ref().map(|c| coding(ATC, c.as_str(), None));
            set(
                &mut r,
                json!({
                    "clinicalStatus": { "coding": [coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", None)] },
                    "criticality": if a.severity == AllergySeverity::Severe { "high" } else { "low" },
                    "code": concept(own, src, &a.substance),
                    "patient": subject,
                    "recordedDate": date,
                }),
            );
            if !a.reaction.trim().is_empty() {
                r["reaction"] = json!([{ "manifestation": [{ "text": a.reaction }], "severity": sev }]);
            }
            r
        }
        HistoryKind::Procedure(p) => {
            let mut r = base("Procedure", e, vec![]);
            let kind = match p.kind {
                ProcedureKind::Surgery => "surgery",
                ProcedureKind::Childbirth => "childbirth",
                ProcedureKind::Procedure => "procedure",
                ProcedureKind::MajorEvent => "major_event",
            };
            let own = p.ops_code.as_deref().map(|c| coding(OPS, c, None));
            set(
                &mut r,
                json!({
                    "status": "completed",
                    "category": { "coding": [coding(PROCEDURE_KIND_SYSTEM, kind, None)] },
                    "code": concept(own, src, &p.display),
                    "subject": subject,
                    "performedDateTime": date,
                }),
            );
            r
        }
        HistoryKind::TherapySession(t) => {
            let minutes = json!({ "url": THERAPY_DURATION_EXT, "valueInteger": t.duration_minutes });
            let mut r = base("Procedure", e, vec![minutes]);
            let (code, text) = match t.modality {
                TherapyModality::CognitiveBehavioural => {
                    ("cognitive_behavioural", "Cognitive behavioural therapy session")
                }
                TherapyModality::Psychodynamic => ("psychodynamic", "Psychodynamic therapy session"),
                TherapyModality::Systemic => ("systemic", "Systemic therapy session"),
                TherapyModality::Group => ("group", "Group therapy session"),
                TherapyModality::Other => ("other", "Psychotherapy session"),
            };
            set(
                &mut r,
                json!({
                    "status": "completed",
                    "code": concept(Some(coding(THERAPY_SYSTEM, code, None)), None, text),
                    "subject": subject,
                    "performedDateTime": date,
                }),
            );
            r
        }
        HistoryKind::Medication(m) | HistoryKind::PsychiatricMedication(m) => {
            let mut r = base("MedicationStatement", e, vec![]);
            let mut period = json!({ "start": m.start.to_string() });
            if let Some(end) = m.end {
                period["end"] = json!(end.to_string());
            }
            set(
                &mut r,
                json!({
                    "status": if m.end.is_some() { "completed" } else { "active" },
                    "medicationCodeableConcept": concept(Some(coding(ATC, m.code.as_str(), None)), src, &m.display),
                    "subject": subject,
                    "effectivePeriod": period,
                    "dateAsserted": date,
                    "dosage": [{
                        "doseAndRate": [{ "doseQuantity": { "value": m.dose.amount, "unit": m.dose.unit } }],
                    }],
                }),
            );
            if !m.dose.frequency.trim().is_empty() {
                r["dosage"][0]["text"] = json!(m.dose.frequency);
            }
            r
        }
        HistoryKind::ImagingStudy(s) => {
            let part = json!({ "url": BODY_PART_EXT, "valueCode": body_part(s.body_part) });
            let mut r = base("ImagingStudy", e, vec![part]);
            let modality = match s.modality {
                Modality::XRay => "DX",
                Modality::Mri => "MR",
                Modality::Ct => "CT",
                Modality::Other => "OT",
            };
            set(
                &mut r,
                json!({
                    "status": "available",
                    "modality": [coding(DICOM_DCM, modality, None)],
                    "subject": subject,
                    "started": date,
                    "description": s.description,
                }),
            );
            if let Some(uid) = &s.study_uid
                && let Some(ids) = r["identifier"].as_array_mut()
            {
                ids.push(json!({ "system": "urn:dicom:uid", "value": format!("urn:oid:{uid}") }));
            }
            if !s.instances.is_empty() {
                r["numberOfInstances"] = json!(s.instances.len());
                let mut series: Vec<Value> = Vec::new();
                for i in &s.instances {
                    if series.iter().any(|x| x["uid"] == i.series_uid.as_str()) {
                        continue;
                    }
                    let n = s.instances.iter().filter(|j| j.series_uid == i.series_uid).count();
                    let series_modality =
                        if i.source_modality.trim().is_empty() { modality } else { i.source_modality.as_str() };
                    let mut one = json!({
                        "uid": i.series_uid,
                        "modality": coding(DICOM_DCM, series_modality, None),
                        "numberOfInstances": n,
                    });
                    if let Some((code, display)) = maps::snomed_for_body_part(s.body_part) {
                        one["bodySite"] = coding(maps::SNOMED, code, Some(display));
                    }
                    series.push(one);
                }
                r["series"] = json!(series);
            }
            r
        }
    };
    (e.id.to_string(), r)
}

pub(super) fn body_part(b: BodyPart) -> &'static str {
    match b {
        BodyPart::Chest => "chest",
        BodyPart::Head => "head",
        BodyPart::Abdomen => "abdomen",
        BodyPart::Spine => "spine",
        BodyPart::Pelvis => "pelvis",
        BodyPart::Hip => "hip",
        BodyPart::Knee => "knee",
        BodyPart::Wrist => "wrist",
        BodyPart::Hand => "hand",
        BodyPart::Foot => "foot",
        BodyPart::Other => "other",
    }
}

fn medication_request(rx: &Prescription, uuid: &str, subject: &Value) -> Value {
    let status = match rx.status {
        PrescriptionStatus::Cancelled => "cancelled",
        PrescriptionStatus::Active if rx.covered_until() < chrono::Utc::now().date_naive() => "completed",
        PrescriptionStatus::Active => "active",
    };
    json!({
        "resourceType": "MedicationRequest",
        "id": uuid,
        "extension": [{ "url": PRESCRIPTION_EXT, "valueString": format!("signed:{}", rx.signature.public_key_hex) }],
        "identifier": [{ "system": "https://carelens.dev/fhir/sid/prescription-id", "value": uuid }],
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept(Some(coding(ATC, rx.drug.as_str(), None)), None, &rx.display),
        "subject": subject,
        "authoredOn": rx.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "requester": { "identifier": { "system": USER_SYSTEM, "value": rx.prescriber.to_string() } },
        "dosageInstruction": [{
            "text": format!("{}; {}", rx.strength, rx.dose.frequency),
            "doseAndRate": [{ "doseQuantity": { "value": rx.dose.amount, "unit": rx.dose.unit } }],
        }],
        "dispenseRequest": {
            "validityPeriod": { "start": rx.start.to_string() },
            "numberOfRepeatsAllowed": rx.refills_allowed,
            "expectedSupplyDuration": { "value": rx.duration_days, "unit": "days", "system": UCUM, "code": "d" },
        },
    })
}

fn appointment(a: &Appointment, uuid: &str, subject: &Value) -> Value {
    let status = match a.status {
        AppointmentStatus::Booked | AppointmentStatus::Confirmed => "booked",
        AppointmentStatus::CheckedIn => "checked-in",
        AppointmentStatus::Completed => "fulfilled",
        AppointmentStatus::NoShow => "noshow",
        AppointmentStatus::Cancelled => "cancelled",
    };
    let visit = serde_json::to_value(a.visit_type).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    json!({
        "resourceType": "Appointment",
        "id": uuid,
        "status": status,
        "appointmentType": { "coding": [coding(VISIT_TYPE_SYSTEM, &visit, None)] },
        "start": a.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "end": a.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "created": a.booked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "participant": [
            { "actor": subject, "status": "accepted" },
            { "actor": { "identifier": { "system": PROVIDER_SYSTEM, "value": a.provider.as_str() } }, "status": "accepted" },
        ],
    })
}

fn consent(c: &ConsentGrant, uuid: &str, subject: &Value) -> Value {
    let grantee = match &c.grantee {
        Grantee::Provider(p) => json!({ "identifier": { "system": PROVIDER_SYSTEM, "value": p.as_str() } }),
        Grantee::CareTeam(t) => json!({ "display": format!("care team {t}") }),
        Grantee::Person(u) => json!({ "identifier": { "system": USER_SYSTEM, "value": u.to_string() } }),
    };
    let mut period = json!({ "start": c.valid_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
    if let Some(until) = c.revoked_at.or(c.valid_until) {
        period["end"] = json!(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let codes: Vec<Value> = c
        .categories
        .iter()
        .map(|cat: &Category| json!({ "coding": [coding(CATEGORY_SYSTEM, cat.as_str(), None)] }))
        .collect();
    let mut r = json!({
        "resourceType": "Consent",
        "id": uuid,
        "status": if c.revoked_at.is_some() { "inactive" } else { "active" },
        "scope": { "coding": [coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", None)] },
        "category": [{ "coding": [coding(LOINC, "59284-0", Some("Patient Consent"))] }],
        "patient": subject,
        "dateTime": c.valid_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "policyRule": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", if c.emergency_reason.is_some() { "EMRGONLY" } else { "OPTIN" }, None)] },
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [{
                "role": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", None)] },
                "reference": grantee,
            }],
            "code": codes,
        },
    });
    if c.emergency_reason.is_some() {
        // The reason is the doctor's free text; the export says that there was one, not what.
        r["provision"]["purpose"] = json!([coding(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "ETREAT",
            Some("Emergency Treatment")
        )]);
    }
    r
}

fn document(d: &DocumentRef, uuid: &str, subject: &Value) -> Value {
    let kind = serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    json!({
        "resourceType": "DocumentReference",
        "id": uuid,
        "extension": [{ "url": SHA256_EXT, "valueString": d.sha256 }],
        "status": "current",
        "type": { "coding": [coding(DOCUMENT_KIND_SYSTEM, &kind, None)] },
        "subject": subject,
        "date": d.uploaded_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "author": [{ "identifier": { "system": USER_SYSTEM, "value": d.uploaded_by } }],
        "content": [{ "attachment": { "contentType": d.content_type, "size": d.size_bytes } }],
    })
}

fn audit_event(a: &AuditEntry, uuid: &str, subject: &Value) -> Value {
    let (action, subtype) = match a.action {
        AuditAction::Read => ("R", "read"),
        AuditAction::Create => ("C", "create"),
        AuditAction::Update => ("U", "update"),
        AuditAction::Delete => ("D", "delete"),
        AuditAction::Export => ("R", "export"),
        AuditAction::Share => ("E", "share"),
        AuditAction::BreakGlass => ("E", "break-glass"),
    };
    let outcome = if matches!(a.outcome, AuditOutcome::Allowed) { "0" } else { "4" };
    let role = serde_json::to_value(a.actor.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    json!({
        "resourceType": "AuditEvent",
        "id": uuid,
        "type": coding(DICOM_DCM, "110110", Some("Patient Record")),
        "subtype": [coding("http://hl7.org/fhir/restful-interaction", subtype, None)],
        "action": action,
        "recorded": a.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "outcome": outcome,
        "outcomeDesc": if outcome == "0" { "allowed" } else { "denied" },
        "agent": [{
            "type": { "coding": [coding("https://carelens.dev/fhir/CodeSystem/role", &role, None)] },
            "who": { "identifier": { "system": USER_SYSTEM, "value": a.actor.id } },
            "requestor": true,
        }],
        "source": { "observer": { "display": "carelens" } },
        "entity": [
            { "what": subject, "name": a.resource },
            { "what": { "identifier": { "system": "https://carelens.dev/fhir/sid/audit-hash", "value": a.hash } } },
        ],
    })
}

fn risk_assessment(set: &PredictionSet, uuid: &str, subject: &Value) -> Value {
    let predictions: Vec<Value> = set
        .predictions
        .iter()
        .map(|p| {
            let band = match p.risk_band {
                RiskBand::Low => "low",
                RiskBand::Medium => "moderate",
                RiskBand::High => "high",
            };
            let sources: Vec<String> = p
                .sources
                .iter()
                .map(|s| format!("{} v{}: {:.3}", s.model.name, s.model.version, s.probability.get()))
                .collect();
            let mut one = json!({
                "outcome": concept(Some(coding(ICD10, p.code.as_str(), None)), None, &p.display),
                "probabilityDecimal": p.probability.get(),
                "qualitativeRisk": { "coding": [coding("http://terminology.hl7.org/CodeSystem/risk-probability", band, None)] },
            });
            let mut rationale = if p.known { "already recorded".to_owned() } else { "predicted".to_owned() };
            if !sources.is_empty() {
                rationale.push_str("; sources: ");
                rationale.push_str(&sources.join(", "));
            }
            one["rationale"] = json!(rationale);
            one
        })
        .collect();
    let basis: Vec<Value> =
        set.models.iter().map(|m| json!({ "display": format!("model {} version {}", m.name, m.version) })).collect();
    let mut r = json!({
        "resourceType": "RiskAssessment",
        "id": uuid,
        "identifier": [{ "system": "https://carelens.dev/fhir/sid/prediction-set", "value": format!("{}", set.version) }],
        "status": "final",
        "method": { "text": "carelens fused prediction set" },
        "subject": subject,
        "occurrenceDateTime": set.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "prediction": predictions,
    });
    if !basis.is_empty() {
        r["basis"] = json!(basis);
    }
    r
}
