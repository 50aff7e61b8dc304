//! FHIR R4 bundles → carelens patients and history entries (pure: bytes in, domain types out).
//!
//! Every resource either becomes entries, is counted as a type carelens does not import, or
//! is reported as a [`Problem`] naming the bundle entry, the resource and the field; one bad
//! resource never stops the rest of the bundle.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use carelens_domain::{
    Allergy, AllergySeverity, AtcCode, BodyPart, ClinicalStatus, Coding, CvxCode, Diagnosis, Dose, EntryId, GeoPoint,
    HealthId, HistoryEntry, HistoryKind, Icd10Code, ImagingStudy, Insurance, InsuranceKind, LoincCode,
    MedicationStatement, Modality, Observation, Patient, PersonName, Procedure, ProcedureKind, ReferenceRange,
    Residence, Sex, Source, SourceKind, TherapyModality, TherapySession, Vaccination, VaccineCode, is_dicom_uid,
    lab_def,
};

use super::maps::{self, ATC, CVX, ICD10, LOINC, OPS, RXNORM, SNOMED};
use super::{
    BODY_PART_EXT, CATEGORY_EXT, ENTRY_ID_SYSTEM, FhirError, HEALTH_ID_SYSTEM, INSURANCE_EXT, PRESCRIPTION_EXT,
    PROCEDURE_KIND_SYSTEM, R4_RESOURCE_TYPES, SEVERITY_EXT, SOURCE_EXT, THERAPY_DURATION_EXT, THERAPY_SYSTEM,
};

/// The insurer id recorded for an imported patient whose bundle names no German insurer
/// (Institutionskennzeichen): nine zeros, "unknown".
pub const UNKNOWN_INSURER: &str = "000000000";
/// The postcode recorded when the bundle's address has none (or not five digits).
pub const UNKNOWN_POSTCODE: &str = "00000";

/// Resource types carelens imports.
pub const IMPORTED_TYPES: &[&str] = &[
    "Patient",
    "Condition",
    "Observation",
    "Immunization",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "ImagingStudy",
];

/// One resource that could not be imported, and why. Never carries a value from the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Index of the bundle entry (0-based).
    pub entry: usize,
    /// `Observation/1234…` (type and id as in the bundle).
    pub resource: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry[{}] {}: {}: {}", self.entry, self.resource, self.field, self.message)
    }
}

/// What one bundle gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BundleReport {
    /// Resources imported, per type.
    pub imported: BTreeMap<String, u64>,
    /// History entries made (an Observation panel gives one per component).
    pub entries: u64,
    /// Valid R4 resources of types carelens does not import (Encounter, Claim, …), per type.
    pub not_imported: BTreeMap<String, u64>,
    /// Resources of an imported type left out on purpose, per reason (e.g. an Observation with
    /// a coded rather than numeric value).
    pub skipped: BTreeMap<String, u64>,
    pub problems: Vec<Problem>,
}

impl BundleReport {
    pub fn add(&mut self, other: &BundleReport) {
        for (k, v) in &other.imported {
            *self.imported.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.not_imported {
            *self.not_imported.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        self.entries += other.entries;
        self.problems.extend(other.problems.iter().cloned());
    }
}

/// A parsed bundle.
#[derive(Debug, Clone, Default)]
pub struct ImportedBundle {
    pub patients: Vec<Patient>,
    pub entries: Vec<HistoryEntry>,
    pub report: BundleReport,
}

type Fail = (String, String);

fn fail(field: &str, message: impl Into<String>) -> Fail {
    (field.to_owned(), message.into())
}

/// Parses one FHIR R4 `Bundle` (JSON).
pub fn parse_bundle(bytes: &[u8]) -> Result<ImportedBundle, FhirError> {
    let bundle: Value = serde_json::from_slice(bytes).map_err(|e| FhirError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let kind = bundle.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if kind != "Bundle" {
        return Err(FhirError::NotABundle { found: kind.to_owned() });
    }
    let empty = Vec::new();
    let items = bundle.get("entry").and_then(Value::as_array).unwrap_or(&empty);
    let mut out = ImportedBundle::default();
    let mut patients: HashMap<String, HealthId> = HashMap::new();

    // Patients first: every other resource points at one.
    for (i, item) in items.iter().enumerate() {
        let Some(r) = item.get("resource") else { continue };
        if r.get("resourceType").and_then(Value::as_str) != Some("Patient") {
            continue;
        }
        match patient(r) {
            Ok(p) => {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                if !id.is_empty() {
                    patients.insert(format!("Patient/{id}"), p.id.clone());
                    patients.insert(format!("urn:uuid:{id}"), p.id.clone());
                }
                if let Some(url) = item.get("fullUrl").and_then(Value::as_str) {
                    patients.insert(url.to_owned(), p.id.clone());
                }
                *out.report.imported.entry("Patient".into()).or_default() += 1;
                out.patients.push(p);
            }
            Err((field, message)) => out.report.problems.push(Problem { entry: i, resource: name(r), field, message }),
        }
    }

    let mut doses: HashMap<(HealthId, String), u8> = HashMap::new();
    // Immunizations count doses in date order when the bundle does not number them.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| {
        let r = &items[i]["resource"];
        (r.get("resourceType").and_then(Value::as_str) != Some("Immunization"), date_text(r).unwrap_or_default())
    });
    for i in order {
        let item = &items[i];
        let Some(r) = item.get("resource") else {
            out.report.problems.push(Problem {
                entry: i,
                resource: "?".into(),
                field: "resource".into(),
                message: "missing".into(),
            });
            continue;
        };
        let Some(kind) = r.get("resourceType").and_then(Value::as_str) else {
            out.report.problems.push(Problem {
                entry: i,
                resource: name(r),
                field: "resourceType".into(),
                message: "missing".into(),
            });
            continue;
        };
        if kind == "Patient" {
            continue;
        }
        if !IMPORTED_TYPES.contains(&kind) {
            if R4_RESOURCE_TYPES.contains(&kind) {
                *out.report.not_imported.entry(kind.into()).or_default() += 1;
            } else {
                out.report.problems.push(Problem {
                    entry: i,
                    resource: name(r),
                    field: "resourceType".into(),
                    message: format!("`{kind}` is not a FHIR R4 resource type"),
                });
            }
            continue;
        }
        let result = subject(r, &patients).and_then(|p| resource(r, kind, &p, &mut doses));
        match result {
            Ok(Made::Entries(entries)) => {
                *out.report.imported.entry(kind.into()).or_default() += 1;
                out.report.entries += entries.len() as u64;
                out.entries.extend(entries);
            }
            Ok(Made::Skipped(reason)) => *out.report.skipped.entry(reason).or_default() += 1,
            Err((field, message)) => out.report.problems.push(Problem { entry: i, resource: name(r), field, message }),
        }
    }
    out.report.problems.sort_by_key(|p| p.entry);
    Ok(out)
}

enum Made {
    Entries(Vec<HistoryEntry>),
    Skipped(String),
}

fn name(r: &Value) -> String {
    format!(
        "{}/{}",
        r.get("resourceType").and_then(Value::as_str).unwrap_or("?"),
        r.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(*p)?,
        };
    }
    cur.as_str()
}

fn identifier<'a>(r: &'a Value, system: &str) -> Option<&'a str> {
    r.get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(system))
        .and_then(|i| i.get("value")?.as_str())
}

fn extension<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r.get("extension")?.as_array()?.iter().find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

fn patient(r: &Value) -> Result<Patient, Fail> {
    let fhir_id = r.get("id").and_then(Value::as_str).unwrap_or_default();
    let id = match identifier(r, HEALTH_ID_SYSTEM) {
        Some(h) => h.parse::<HealthId>().map_err(|e| fail("identifier", e.to_string()))?,
        None if !fhir_id.is_empty() => {
            HealthId::from_number((super::stable_id(&["Patient", fhir_id]) & ((1 << 50) - 1)) as u64)
        }
        None => return Err(fail("id", "a Patient needs an id or a carelens Health ID identifier")),
    };
    let name = r.get("name").and_then(|n| n.get(0)).ok_or_else(|| fail("name", "missing"))?;
    let family = name.get("family").and_then(Value::as_str).unwrap_or_default().to_owned();
    let given = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let birth = str_at(r, &["birthDate"]).ok_or_else(|| fail("birthDate", "missing"))?;
    let birth_date = parse_date(birth).ok_or_else(|| fail("birthDate", "expected YYYY-MM-DD"))?;
    let sex = match str_at(r, &["gender"]) {
        Some("female") => Sex::Female,
        Some("male") => Sex::Male,
        Some("other") => Sex::Diverse,
        _ => Sex::Unknown,
    };
    let address = r.get("address").and_then(|a| a.get(0));
    let text = |k: &str| address.and_then(|a| a.get(k)).and_then(Value::as_str).map(str::to_owned);
    let postcode = text("postalCode")
        .filter(|p| p.len() == 5 && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| UNKNOWN_POSTCODE.into());
    let geo = address.and_then(|a| extension(a, "http://hl7.org/fhir/StructureDefinition/geolocation"));
    let coord = |k: &str| {
        geo.and_then(|g| g.get("extension")?.as_array()?.iter().find(|e| e["url"] == k)?.get("valueDecimal")?.as_f64())
    };
    let location = GeoPoint::new(coord("latitude").unwrap_or(0.0), coord("longitude").unwrap_or(0.0))
        .map_err(|e| fail("address.extension.geolocation", e.to_string()))?;
    let residence = Residence {
        region: text("state").unwrap_or_else(|| "unknown".into()),
        city: text("city").unwrap_or_else(|| "unknown".into()),
        postcode,
        location,
    };
    let insurance = match extension(r, INSURANCE_EXT) {
        Some(ext) => {
            let part = |k: &str| {
                ext.get("extension")?.as_array()?.iter().find(|e| e["url"] == k).and_then(|e| {
                    e.get("valueCode").or_else(|| e.get("valueString")).and_then(Value::as_str).map(str::to_owned)
                })
            };
            Insurance {
                kind: if part("kind").as_deref() == Some("private") {
                    InsuranceKind::Private
                } else {
                    InsuranceKind::Statutory
                },
                insurer_id: part("insurer").unwrap_or_else(|| UNKNOWN_INSURER.into()),
            }
        }
        None => Insurance { kind: InsuranceKind::Statutory, insurer_id: UNKNOWN_INSURER.into() },
    };
    Patient::new(id, PersonName { given, family }, birth_date, sex, residence, insurance).map_err(domain)
}

/// A domain validation failure as (field, reason).
fn domain(e: carelens_domain::DomainError) -> Fail {
    let carelens_domain::DomainError::Invalid { field, reason } = e;
    (field, reason)
}

fn subject(r: &Value, patients: &HashMap<String, HealthId>) -> Result<HealthId, Fail> {
    let (field, reference) = ["subject", "patient"]
        .iter()
        .find_map(|f| Some((*f, r.get(*f)?.get("reference")?.as_str()?)))
        .ok_or_else(|| fail("subject", "no reference to the patient"))?;
    patients
        .get(reference)
        .cloned()
        .ok_or_else(|| fail(&format!("{field}.reference"), format!("`{reference}` names no Patient in this bundle")))
}

/// The resource's clinical date as written (`effectiveDateTime`, `onsetDateTime`, …).
fn date_text(r: &Value) -> Option<&str> {
    const FIELDS: &[&[&str]] = &[
        &["effectiveDateTime"],
        &["effectivePeriod", "start"],
        &["onsetDateTime"],
        &["recordedDate"],
        &["occurrenceDateTime"],
        &["authoredOn"],
        &["performedDateTime"],
        &["performedPeriod", "start"],
        &["started"],
        &["issued"],
        &["date"],
    ];
    FIELDS.iter().find_map(|p| str_at(r, p))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let head = s.get(..10)?;
    NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
}

fn clinical_date(r: &Value) -> Result<NaiveDate, Fail> {
    let text =
        date_text(r).ok_or_else(|| fail("effective[x]", "no date (effective, onset, occurrence, performed …)"))?;
    parse_date(text).ok_or_else(|| fail("effective[x]", "expected a date YYYY-MM-DD…"))
}

fn codings(concept: Option<&Value>) -> Vec<Coding> {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some(Coding {
                        system: c.get("system")?.as_str()?.to_owned(),
                        code: c.get("code")?.as_str()?.to_owned(),
                        display: c.get("display").and_then(Value::as_str).map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `code.text`, else the first coding's display.
fn concept_text(concept: Option<&Value>, codings: &[Coding]) -> Option<String> {
    concept
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| codings.iter().find_map(|c| c.display.clone()))
        .filter(|t| !t.trim().is_empty())
}

/// The coding that is not carelens's own system, kept as the entry's source coding.
fn foreign(codings: &[Coding], own: &[&str]) -> Option<Coding> {
    codings.iter().find(|c| !own.contains(&c.system.as_str())).cloned()
}

fn source(r: &Value, kind: &str) -> Source {
    if let Some(text) = extension(r, SOURCE_EXT).and_then(|e| e.get("valueString")?.as_str()) {
        let (k, reference) = text.split_once('|').map_or((text, None), |(k, r)| (k, Some(r.to_owned())));
        let kind = match k {
            "synthetic" => Some(SourceKind::Synthetic),
            "clinician" => Some(SourceKind::Clinician),
            "patient" => Some(SourceKind::Patient),
            "import" => Some(SourceKind::Import),
            "device" => Some(SourceKind::Device),
            _ => None,
        };
        if let Some(kind) = kind {
            return Source { kind, reference };
        }
    }
    let id = r.get("id").and_then(Value::as_str).unwrap_or("?");
    Source { kind: SourceKind::Import, reference: Some(format!("FHIR {kind}/{id}")) }
}

fn entry_id(r: &Value, patient: &HealthId, kind: &str, part: &str) -> Result<EntryId, Fail> {
    if let Some(id) = identifier(r, ENTRY_ID_SYSTEM) {
        return id.parse().map_err(|e: carelens_domain::DomainError| fail("identifier", e.to_string()));
    }
    let id = r.get("id").and_then(Value::as_str).ok_or_else(|| fail("id", "missing"))?;
    Ok(EntryId::from_u128(super::stable_id(&[patient.as_str(), kind, id, part])))
}

fn is_mental_health(r: &Value) -> bool {
    extension(r, CATEGORY_EXT).and_then(|e| e.get("valueCode")?.as_str()) == Some("mental_health")
}

fn entry(
    r: &Value,
    kind_name: &str,
    part: &str,
    patient: &HealthId,
    date: NaiveDate,
    kind: HistoryKind,
    coding: Option<Coding>,
) -> Result<HistoryEntry, Fail> {
    let id = entry_id(r, patient, kind_name, part)?;
    let e = HistoryEntry::new(id, patient.clone(), date, source(r, kind_name), kind).map_err(domain)?;
    Ok(match coding {
        Some(c) => e.with_source_coding(c),
        None => e,
    })
}

fn resource(
    r: &Value,
    kind: &str,
    patient: &HealthId,
    doses: &mut HashMap<(HealthId, String), u8>,
) -> Result<Made, Fail> {
    match kind {
        "Condition" => condition(r, patient),
        "Observation" => observation(r, patient),
        "Immunization" => immunization(r, patient, doses),
        "AllergyIntolerance" => allergy(r, patient),
        "MedicationRequest" | "MedicationStatement" => medication(r, kind, patient),
        "Procedure" => procedure(r, patient),
        "ImagingStudy" => imaging(r, patient),
        _ => Ok(Made::Skipped(format!("{kind} (not imported)"))),
    }
}

fn condition(r: &Value, patient: &HealthId) -> Result<Made, Fail> {
    if let Some(status) = str_at(r, &["verificationStatus", "coding", "0", "code"])
        && matches!(status, "refuted" | "entered-in-error")
    {
        return Ok(Made::Skipped(format!("Condition ({status})")));
    }
    let concept = r.get("code");
    let codes = codings(concept);
    let icd = codes.iter().find(|c| c.system == ICD10).map(|c| c.code.as_str());
    let (code, coding) = match icd {
        Some(c) => (c.parse::<Icd10Code>().map_err(|e| fail("code.coding", e.to_string()))?, foreign(&codes, &[ICD10])),
        None => {
            let snomed = codes
                .iter()
                .find(|c| c.system == SNOMED)
                .ok_or_else(|| fail("code.coding", "needs an ICD-10 or SNOMED CT coding"))?;
            let code = maps::icd10_for_snomed(&snomed.code)
                .unwrap_or_else(|| maps::UNMAPPED_ICD10.parse().expect("R69 is a valid ICD-10 code"));
            (code, Some(snomed.clone()))
        }
    };
    let display = concept_text(concept, &codes).ok_or_else(|| fail("code.text", "no text or display"))?;
    let resolved =
        matches!(str_at(r, &["clinicalStatus", "coding", "0", "code"]), Some("inactive" | "remission" | "resolved"))
            || r.get("abatementDateTime").is_some();
    let status = if resolved { ClinicalStatus::Resolved } else { ClinicalStatus::Active };
    let date = clinical_date(r)?;
    let e =
        entry(r, "Condition", "", patient, date, HistoryKind::Diagnosis(Diagnosis { code, display, status }), coding)?;
    Ok(Made::Entries(vec![e]))
}

/// Synthea writes eGFR (LOINC 33914-3) in `mL/min`; the catalogue's unit is per 1.73 m², which
/// the test is by definition. Other units for catalogued codes are refused, not converted.
fn catalogue_unit(code: &LoincCode, unit: Option<&str>) -> Option<String> {
    let def = lab_def(code)?;
    match unit {
        None | Some("") => Some(def.unit.to_owned()),
        Some("mL/min") if def.loinc == "33914-3" => Some(def.unit.to_owned()),
        Some(u) => Some(u.to_owned()),
    }
}

fn observation(r: &Value, patient: &HealthId) -> Result<Made, Fail> {
    if matches!(str_at(r, &["status"]), Some("entered-in-error" | "cancelled")) {
        return Ok(Made::Skipped("Observation (entered in error or cancelled)".into()));
    }
    let date = clinical_date(r)?;
    let mut parts: Vec<(String, &Value, &Value)> = Vec::new();
    if let Some(q) = r.get("valueQuantity") {
        parts.push((String::new(), r, q));
    } else if let Some(components) = r.get("component").and_then(Value::as_array) {
        for (i, c) in components.iter().enumerate() {
            if let Some(q) = c.get("valueQuantity") {
                parts.push((format!("component{i}"), c, q));
            }
        }
    }
    if parts.is_empty() {
        return Ok(Made::Skipped("Observation (no numeric value: coded, text or absent)".into()));
    }
    let mut out = Vec::new();
    for (part, holder, q) in parts {
        let field = if part.is_empty() { "code".to_owned() } else { format!("{part}.code") };
        let concept = holder.get("code");
        let codes = codings(concept);
        let loinc = codes.iter().find(|c| c.system == LOINC).ok_or_else(|| fail(&field, "needs a LOINC coding"))?;
        let code: LoincCode =
            loinc.code.parse().map_err(|e: carelens_domain::DomainError| fail(&field, e.to_string()))?;
        let value = q
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| fail("valueQuantity.value", "missing or not a number"))?;
        let given = q.get("unit").or_else(|| q.get("code")).and_then(Value::as_str);
        let unit = catalogue_unit(&code, given).or_else(|| given.map(str::to_owned)).unwrap_or_else(|| "1".into());
        let range = holder.get("referenceRange").and_then(|rr| rr.get(0)).and_then(|rr| {
            Some(ReferenceRange {
                low: rr.get("low")?.get("value")?.as_f64()?,
                high: rr.get("high")?.get("value")?.as_f64()?,
            })
        });
        let reference_range =
            range.or_else(|| lab_def(&code).map(|d| ReferenceRange { low: d.ref_low, high: d.ref_high }));
        let display = concept_text(concept, &codes).unwrap_or_else(|| code.as_str().to_owned());
        let coding = foreign(&codes, &[LOINC]);
        let o = Observation { code, display, value, unit, reference_range };
        out.push(entry(r, "Observation", &part, patient, date, HistoryKind::Observation(o), coding)?);
    }
    Ok(Made::Entries(out))
}

fn immunization(r: &Value, patient: &HealthId, doses: &mut HashMap<(HealthId, String), u8>) -> Result<Made, Fail> {
    if matches!(str_at(r, &["status"]), Some("not-done" | "entered-in-error")) {
        return Ok(Made::Skipped("Immunization (not done)".into()));
    }
    let concept = r.get("vaccineCode");
    let codes = codings(concept);
    let vaccine = if let Some(c) = codes.iter().find(|c| c.system == CVX) {
        VaccineCode::Cvx(c.code.parse::<CvxCode>().map_err(|e| fail("vaccineCode", e.to_string()))?)
    } else if let Some(c) = codes.iter().find(|c| c.system == ATC) {
        VaccineCode::Atc(c.code.parse::<AtcCode>().map_err(|e| fail("vaccineCode", e.to_string()))?)
    } else {
        return Err(fail("vaccineCode.coding", "needs a CVX or ATC coding"));
    };
    let key = match &vaccine {
        VaccineCode::Cvx(c) => format!("cvx:{c}"),
        VaccineCode::Atc(c) => format!("atc:{c}"),
    };
    let counted = doses.entry((patient.clone(), key)).or_default();
    *counted = counted.saturating_add(1);
    let dose_number = r
        .get("protocolApplied")
        .and_then(|p| p.get(0)?.get("doseNumberPositiveInt")?.as_u64())
        .map_or(*counted, |n| n.clamp(1, 255) as u8);
    let display = concept_text(concept, &codes).unwrap_or_else(|| "vaccine".into());
    let coding = foreign(&codes, &[CVX, ATC]);
    let date = clinical_date(r)?;
    let e = entry(
        r,
        "Immunization",
        "",
        patient,
        date,
        HistoryKind::Vaccination(Vaccination { vaccine, display, dose_number }),
        coding,
    )?;
    Ok(Made::Entries(vec![e]))
}

fn severity(code: &str) -> Option<AllergySeverity> {
    match code {
        "mild" => Some(AllergySeverity::Mild),
        "moderate" => Some(AllergySeverity::Moderate),
        "severe" => Some(AllergySeverity::Severe),
        _ => None,
    }
}

fn allergy(r: &Value, patient: &HealthId) -> Result<Made, Fail> {
    let concept = r.get("code");
    let codes = codings(concept);
    let substance = concept_text(concept, &codes).ok_or_else(|| fail("code", "no substance text or coding"))?;
    let substance_code = match codes.iter().find(|c| c.system == ATC) {
        Some(c) => Some(c.code.parse::<AtcCode>().map_err(|e| fail("code.coding", e.to_string()))?),
        None => None,
    };
    let reaction = r.get("reaction").and_then(|x| x.get(0));
    let reaction_text = reaction
        .and_then(|x| x.get("manifestation")?.get(0))
        .and_then(|m| {
            let cs = codings(Some(m));
            concept_text(Some(m), &cs)
        })
        .unwrap_or_default();
    let sev = extension(r, SEVERITY_EXT)
        .and_then(|e| e.get("valueCode")?.as_str())
        .and_then(severity)
        .or_else(|| reaction.and_then(|x| x.get("severity")?.as_str()).and_then(severity))
        .unwrap_or(match str_at(r, &["criticality"]) {
            Some("high") => AllergySeverity::Severe,
            Some("low") => AllergySeverity::Mild,
            _ => AllergySeverity::Moderate,
        });
    let date = clinical_date(r)?;
    let coding = foreign(&codes, &[ATC]);
    let a = Allergy { substance, substance_code, reaction: reaction_text, severity: sev };
    Ok(Made::Entries(vec![entry(r, "AllergyIntolerance", "", patient, date, HistoryKind::Allergy(a), coding)?]))
}

fn dose(dosage: Option<&Value>) -> Dose {
    let q = dosage.and_then(|d| d.get("doseAndRate")?.get(0)?.get("doseQuantity"));
    let amount = q.and_then(|q| q.get("value")?.as_f64()).filter(|a| a.is_finite() && *a > 0.0);
    let unit = q.and_then(|q| q.get("unit").or_else(|| q.get("code"))?.as_str()).filter(|u| !u.trim().is_empty());
    let frequency = dosage.and_then(|d| d.get("text")?.as_str().map(str::to_owned)).or_else(|| {
        let rep = dosage?.get("timing")?.get("repeat")?;
        let f = rep.get("frequency")?.as_u64()?;
        let p = rep.get("period")?.as_f64()?;
        let u = rep.get("periodUnit")?.as_str()?;
        Some(format!("{f} per {p} {u}"))
    });
    match (amount, unit) {
        (Some(amount), Some(unit)) => {
            Dose { amount, unit: unit.to_owned(), frequency: frequency.unwrap_or_else(|| "as directed".into()) }
        }
        // No dose in the resource: one dose, as directed (documented in maps/README.md).
        _ => Dose { amount: 1.0, unit: "dose".into(), frequency: frequency.unwrap_or_else(|| "as directed".into()) },
    }
}

fn medication(r: &Value, kind: &str, patient: &HealthId) -> Result<Made, Fail> {
    let status = str_at(r, &["status"]).unwrap_or("active");
    if matches!(status, "entered-in-error" | "cancelled" | "draft" | "not-taken") {
        return Ok(Made::Skipped(format!("{kind} ({status})")));
    }
    if extension(r, PRESCRIPTION_EXT).is_some() {
        return Ok(Made::Skipped(format!(
            "{kind} (a carelens prescription, also exported as its MedicationStatement)"
        )));
    }
    let Some(concept) = r.get("medicationCodeableConcept") else {
        return Err(fail("medication[x]", "only medicationCodeableConcept is supported (not a Medication reference)"));
    };
    let codes = codings(Some(concept));
    let (code, coding) = match codes.iter().find(|c| c.system == ATC) {
        Some(c) => (
            c.code.parse::<AtcCode>().map_err(|e| fail("medicationCodeableConcept", e.to_string()))?,
            foreign(&codes, &[ATC]),
        ),
        None => {
            let rx = codes
                .iter()
                .find(|c| c.system == RXNORM)
                .ok_or_else(|| fail("medicationCodeableConcept.coding", "needs an ATC or RxNorm coding"))?;
            let code = maps::atc_for_rxnorm(&rx.code)
                .unwrap_or_else(|| maps::UNMAPPED_ATC.parse().expect("V is a valid ATC code"));
            (code, Some(rx.clone()))
        }
    };
    let display = concept_text(Some(concept), &codes).unwrap_or_else(|| code.as_str().to_owned());
    let (start, end, dosage) = if kind == "MedicationStatement" {
        let start = clinical_date(r)?;
        let end = match str_at(r, &["effectivePeriod", "end"]) {
            Some(t) => Some(parse_date(t).ok_or_else(|| fail("effectivePeriod.end", "expected a date"))?),
            None => None,
        };
        (start, end, r.get("dosage").and_then(|d| d.get(0)))
    } else {
        // A request has no end date: a stopped or completed one ends the day it was ordered.
        let start = clinical_date(r)?;
        let end = matches!(status, "stopped" | "completed" | "on-hold").then_some(start);
        (start, end, r.get("dosageInstruction").and_then(|d| d.get(0)))
    };
    let m = MedicationStatement { code, display, dose: dose(dosage), start, end };
    // carelens's own exports say when the entry was recorded, which may differ from the start.
    let date = match str_at(r, &["dateAsserted"]) {
        Some(t) => parse_date(t).ok_or_else(|| fail("dateAsserted", "expected a date"))?,
        None => start,
    };
    let psychiatric = is_mental_health(r) || maps::is_psychiatric(&m.code);
    let hk = if psychiatric { HistoryKind::PsychiatricMedication(m) } else { HistoryKind::Medication(m) };
    Ok(Made::Entries(vec![entry(r, kind, "", patient, date, hk, coding)?]))
}

fn procedure(r: &Value, patient: &HealthId) -> Result<Made, Fail> {
    if matches!(str_at(r, &["status"]), Some("not-done" | "entered-in-error")) {
        return Ok(Made::Skipped("Procedure (not done)".into()));
    }
    let concept = r.get("code");
    let codes = codings(concept);
    let date = clinical_date(r)?;
    if let Some(t) = codes.iter().find(|c| c.system == THERAPY_SYSTEM) {
        let modality = match t.code.as_str() {
            "cognitive_behavioural" => TherapyModality::CognitiveBehavioural,
            "psychodynamic" => TherapyModality::Psychodynamic,
            "systemic" => TherapyModality::Systemic,
            "group" => TherapyModality::Group,
            _ => TherapyModality::Other,
        };
        let minutes = extension(r, THERAPY_DURATION_EXT)
            .and_then(|e| e.get("valueInteger")?.as_u64())
            .ok_or_else(|| fail("extension", "a therapy session needs its duration in minutes"))?;
        let s = TherapySession { modality, duration_minutes: minutes.min(u64::from(u16::MAX)) as u16 };
        return Ok(Made::Entries(vec![entry(
            r,
            "Procedure",
            "",
            patient,
            date,
            HistoryKind::TherapySession(s),
            None,
        )?]));
    }
    let display = concept_text(concept, &codes).ok_or_else(|| fail("code", "no text or display"))?;
    let ops_code = codes.iter().find(|c| c.system == OPS).map(|c| c.code.clone());
    let kind = match str_at(r, &["category", "coding", "0", "system"]) {
        Some(PROCEDURE_KIND_SYSTEM) => match str_at(r, &["category", "coding", "0", "code"]) {
            Some("surgery") => ProcedureKind::Surgery,
            Some("childbirth") => ProcedureKind::Childbirth,
            Some("major_event") => ProcedureKind::MajorEvent,
            _ => ProcedureKind::Procedure,
        },
        _ => maps::procedure_kind(&display),
    };
    let coding = foreign(&codes, &[OPS]);
    let p = Procedure { kind, ops_code, display };
    Ok(Made::Entries(vec![entry(r, "Procedure", "", patient, date, HistoryKind::Procedure(p), coding)?]))
}

fn imaging(r: &Value, patient: &HealthId) -> Result<Made, Fail> {
    let uid = r.get("identifier").and_then(Value::as_array).and_then(|ids| {
        ids.iter().find_map(|i| {
            let v = i.get("value")?.as_str()?;
            let v = v.strip_prefix("urn:oid:").unwrap_or(v);
            is_dicom_uid(v).then(|| v.to_owned())
        })
    });
    let series = r.get("series").and_then(|s| s.get(0));
    let modality_code = str_at(r, &["modality", "0", "code"])
        .or_else(|| series.and_then(|s| str_at(s, &["modality", "code"])))
        .unwrap_or("OT");
    let body_part = match extension(r, BODY_PART_EXT).and_then(|e| e.get("valueCode")?.as_str()) {
        Some(code) => body_part_named(code),
        None => {
            series.and_then(|s| str_at(s, &["bodySite", "code"])).map_or(BodyPart::Other, maps::body_part_for_snomed)
        }
    };
    let description = str_at(r, &["description"])
        .or_else(|| str_at(r, &["procedureCode", "0", "text"]))
        .or_else(|| str_at(r, &["procedureCode", "0", "coding", "0", "display"]))
        .or_else(|| series.and_then(|s| str_at(s, &["description"])))
        .unwrap_or("Imaging study")
        .to_owned();
    let study = ImagingStudy {
        modality: Modality::from_dicom(modality_code),
        body_part,
        study_uid: uid,
        description,
        object_keys: vec![],
        instances: vec![],
    };
    let date = clinical_date(r)?;
    Ok(Made::Entries(vec![entry(r, "ImagingStudy", "", patient, date, HistoryKind::ImagingStudy(study), None)?]))
}

fn body_part_named(code: &str) -> BodyPart {
    match code {
        "chest" => BodyPart::Chest,
        "head" => BodyPart::Head,
        "abdomen" => BodyPart::Abdomen,
        "spine" => BodyPart::Spine,
        "pelvis" => BodyPart::Pelvis,
        "hip" => BodyPart::Hip,
        "knee" => BodyPart::Knee,
        "wrist" => BodyPart::Wrist,
        "hand" => BodyPart::Hand,
        "foot" => BodyPart::Foot,
        _ => BodyPart::Other,
    }
}
