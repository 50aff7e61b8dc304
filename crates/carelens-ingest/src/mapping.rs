//! Who an image belongs to: DICOM PatientID + issuer → Health ID (a mapping table), and a
//! manifest for PNG/JPEG files, which carry no patient at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use carelens_domain::{BodyPart, HealthId, Modality};
use chrono::NaiveDate;

use crate::IngestError;

/// `issuer,patient_id,health_id` rows. A PatientID that is itself a valid Health ID (as in
/// carelens' own exports and synthetic studies) needs no row.
#[derive(Debug, Clone, Default)]
pub struct PatientMap {
    rows: HashMap<(String, String), HealthId>,
}

fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Io { path: path.to_path_buf(), source })?;
    Ok(csv::ReaderBuilder::new().trim(csv::Trim::All).comment(Some(b'#')).from_reader(file))
}

/// Checks the header has exactly the required columns (optional ones allowed) and returns
/// the index of each.
fn columns(
    path: &Path,
    reader: &mut csv::Reader<std::fs::File>,
    required: &[&str],
    optional: &[&str],
) -> Result<Vec<Option<usize>>, IngestError> {
    let headers = reader.headers().map_err(|e| bad(path, 1, &format!("cannot read the header: {e}")))?.clone();
    for h in headers.iter() {
        if !required.contains(&h) && !optional.contains(&h) {
            return Err(bad(
                path,
                1,
                &format!(
                    "unknown column `{h}`; expected {}{}",
                    required.join(","),
                    if optional.is_empty() { String::new() } else { format!(" (optional: {})", optional.join(",")) }
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for r in required {
        let i = headers.iter().position(|h| h == *r).ok_or_else(|| {
            bad(path, 1, &format!("missing column `{r}`; the header must name {}", required.join(",")))
        })?;
        out.push(Some(i));
    }
    for o in optional {
        out.push(headers.iter().position(|h| h == *o));
    }
    Ok(out)
}

fn bad(path: &Path, line: u64, detail: &str) -> IngestError {
    IngestError::Table { path: path.to_path_buf(), line, detail: detail.to_owned() }
}

impl PatientMap {
    pub fn load(path: &Path) -> Result<Self, IngestError> {
        let mut reader = csv_reader(path)?;
        let cols = columns(path, &mut reader, &["issuer", "patient_id", "health_id"], &[])?;
        let mut rows = HashMap::new();
        for (i, record) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let record = record.map_err(|e| bad(path, line, &e.to_string()))?;
            let get = |c: usize| cols[c].and_then(|i| record.get(i)).unwrap_or_default();
            let health_id: HealthId =
                get(2).parse().map_err(|e| bad(path, line, &format!("column `health_id`: {e}")))?;
            if get(1).is_empty() {
                return Err(bad(path, line, "column `patient_id` is empty"));
            }
            rows.insert((get(0).to_owned(), get(1).to_owned()), health_id);
        }
        Ok(Self { rows })
    }

    pub fn insert(&mut self, issuer: &str, patient_id: &str, health_id: HealthId) {
        self.rows.insert((issuer.to_owned(), patient_id.to_owned()), health_id);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The Health ID for a DICOM PatientID and Issuer of Patient ID. The error never
    /// contains the PatientID itself (it identifies a person).
    pub fn resolve(&self, patient_id: Option<&str>, issuer: Option<&str>) -> Result<HealthId, String> {
        let Some(pid) = patient_id.map(str::trim).filter(|p| !p.is_empty()) else {
            return Err("no PatientID (0010,0020) in the file".into());
        };
        let issuer = issuer.map(str::trim).unwrap_or_default();
        if let Some(h) = self.rows.get(&(issuer.to_owned(), pid.to_owned())) {
            return Ok(h.clone());
        }
        if let Ok(h) = pid.parse::<HealthId>() {
            return Ok(h);
        }
        Err(format!(
            "PatientID from issuer {:?} is not in the patient map; add an `issuer,patient_id,health_id` row (--patient-map)",
            if issuer.is_empty() { "(none)" } else { issuer }
        ))
    }
}

/// What the manifest says about one PNG/JPEG file.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestRow {
    pub health_id: HealthId,
    pub modality: Modality,
    pub body_part: BodyPart,
    pub study_date: NaiveDate,
    pub study_uid: Option<String>,
}

/// `file,health_id,modality,body_part,study_date[,study_uid]`; `file` is relative to the
/// manifest's folder (or absolute). Modality: xray, ct, mri or a DICOM code (CR, CT, MR, …).
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    rows: HashMap<PathBuf, ManifestRow>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, IngestError> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut reader = csv_reader(path)?;
        let cols =
            columns(path, &mut reader, &["file", "health_id", "modality", "body_part", "study_date"], &["study_uid"])?;
        let mut rows = HashMap::new();
        for (i, record) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let record = record.map_err(|e| bad(path, line, &e.to_string()))?;
            let get = |c: usize| cols[c].and_then(|i| record.get(i)).unwrap_or_default();
            let file = base.join(get(0));
            let health_id = get(1).parse().map_err(|e| bad(path, line, &format!("column `health_id`: {e}")))?;
            let modality = match get(2).to_ascii_lowercase().as_str() {
                "xray" | "x-ray" => Modality::XRay,
                "ct" => Modality::Ct,
                "mri" | "mr" => Modality::Mri,
                other => Modality::from_dicom(other),
            };
            let body_part = BodyPart::from_dicom(get(3));
            let study_date = NaiveDate::parse_from_str(get(4), "%Y-%m-%d")
                .map_err(|_| bad(path, line, &format!("column `study_date`: {:?} is not YYYY-MM-DD", get(4))))?;
            let study_uid = Some(get(5).to_owned()).filter(|s| !s.is_empty());
            let key = file.canonicalize().unwrap_or(file);
            rows.insert(key, ManifestRow { health_id, modality, body_part, study_date, study_uid });
        }
        Ok(Self { rows })
    }

    pub fn get(&self, file: &Path) -> Option<&ManifestRow> {
        let key = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        self.rows.get(&key)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// `sop_instance_uid,findings` rows: per-image labels (findings separated by `;`, or
/// `normal`), e.g. from annotators or the synthetic generator.
pub fn load_labels(path: &Path) -> Result<HashMap<String, Vec<carelens_domain::ImageFinding>>, IngestError> {
    let mut reader = csv_reader(path)?;
    let cols = columns(path, &mut reader, &["sop_instance_uid", "findings"], &[])?;
    let mut out = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| bad(path, line, &e.to_string()))?;
        let get = |c: usize| cols[c].and_then(|i| record.get(i)).unwrap_or_default();
        let mut findings = Vec::new();
        for f in get(1).split(';').map(str::trim).filter(|f| !f.is_empty() && *f != "normal") {
            let finding =
                carelens_domain::ImageFinding::ALL.into_iter().find(|x| x.as_str() == f).ok_or_else(|| {
                    let known: Vec<&str> = carelens_domain::ImageFinding::ALL.iter().map(|x| x.as_str()).collect();
                    bad(
                        path,
                        line,
                        &format!("column `findings`: unknown finding {f:?}; known: normal, {}", known.join(", ")),
                    )
                })?;
            findings.push(finding);
        }
        out.insert(get(0).to_owned(), findings);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bad_tables_name_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("map.csv");
        for (text, want) in [
            ("issuer,patient\nA,1\n", "unknown column `patient`"),
            ("issuer,patient_id\nA,1\n", "missing column `health_id`"),
            ("issuer,patient_id,health_id\nA,1,CLH123\n", "line 2: column `health_id`"),
            ("issuer,patient_id,health_id\nA,,CLH123\n", "line 2"),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = PatientMap::load(&p).unwrap_err().to_string();
            assert!(err.contains("map.csv") && err.contains(want), "{err}");
        }
        let m = dir.path().join("manifest.csv");
        std::fs::write(&m, "file,health_id,modality,body_part,study_date\na.png,CLH0000000000,xray,chest,2025-13-01\n")
            .unwrap();
        let err = Manifest::load(&m).unwrap_err().to_string();
        assert!(err.contains("manifest.csv"), "{err}");
    }

    #[test]
    fn resolves_by_table_or_by_health_id_and_never_echoes_the_patient_id() {
        let mut map = PatientMap::default();
        let h: HealthId = HealthId::from_number(7);
        map.insert("HOSP-A", "12345", h.clone());
        assert_eq!(map.resolve(Some("12345"), Some("HOSP-A")).unwrap(), h);
        assert_eq!(map.resolve(Some(h.as_str()), None).unwrap(), h);
        let err = map.resolve(Some("12345"), Some("HOSP-B")).unwrap_err();
        assert!(err.contains("HOSP-B") && !err.contains("12345"), "{err}");
        assert!(map.resolve(None, None).is_err());
    }
}
