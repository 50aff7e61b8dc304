//! carelens phantom: procedurally generated anatomy with findings, written as real DICOM
//! Part 10 files (valid meta group, proper SOP classes and UIDs).
//!
//! - chest X-rays (lungs, heart, ribs, clavicles, diaphragm) with consolidation, pleural
//!   effusion (blunted angle), cardiomegaly (cardiothoracic ratio > 0.55) and lung nodules;
//! - chest and abdominal CT series in Hounsfield units (nodule, consolidation, effusion;
//!   kidney stone);
//! - T1 post-contrast brain MR series (enhancing mass with oedema).
//!
//! Acquisition varies per study (position, rotation, scale, contrast, noise, bias field,
//! MONOCHROME1/2, signed/unsigned CT storage) so a model has to learn the finding, not the
//! scanner. Labels are per image: a CT slice is labelled only if the finding reaches it.
//! No IO: files come back as bytes.

mod anatomy;
mod rng;

use carelens_domain::{BodyPart, ImageFinding, Modality};
use chrono::NaiveDate;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

pub use anatomy::{AbdomenCt, BrainMr, Chest, ChestCt};
pub use rng::Rng;

#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    #[error("cannot write DICOM: {0}")]
    Write(String),
}

/// The kinds of study the phantom can render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudyKind {
    ChestXray,
    ChestCt,
    AbdomenCt,
    BrainMr,
}

impl StudyKind {
    pub fn for_study(modality: Modality, body_part: BodyPart) -> Option<Self> {
        match (modality, body_part) {
            (Modality::XRay, BodyPart::Chest) => Some(Self::ChestXray),
            (Modality::Ct, BodyPart::Chest) => Some(Self::ChestCt),
            (Modality::Ct, BodyPart::Abdomen) => Some(Self::AbdomenCt),
            (Modality::Mri, BodyPart::Head) => Some(Self::BrainMr),
            _ => None,
        }
    }

    /// Findings this kind of image can show.
    pub fn possible_findings(self) -> &'static [ImageFinding] {
        match self {
            Self::ChestXray => &[
                ImageFinding::Consolidation,
                ImageFinding::PleuralEffusion,
                ImageFinding::Cardiomegaly,
                ImageFinding::LungNodule,
            ],
            Self::ChestCt => &[ImageFinding::Consolidation, ImageFinding::PleuralEffusion, ImageFinding::LungNodule],
            Self::AbdomenCt => &[ImageFinding::KidneyStone],
            Self::BrainMr => &[ImageFinding::BrainMass],
        }
    }
}

/// Findings for a synthetic study, following the patient's ground truth: pneumonia →
/// consolidation (a quarter with effusion), coronary heart disease → cardiomegaly (55 %),
/// kidney disease raises kidney-stone odds; otherwise incidental findings at low rates, and
/// most studies are normal.
pub fn findings_for(kind: StudyKind, conditions: &[carelens_domain::Condition], seed: u64) -> Vec<ImageFinding> {
    use carelens_domain::Condition;
    let mut rng = Rng::new(seed);
    rng.mix(b"findings");
    let has = |c| conditions.contains(&c);
    let mut out = Vec::new();
    let mut add = |f, p: f32, rng: &mut Rng| {
        if rng.chance(p) {
            out.push(f);
        }
    };
    match kind {
        StudyKind::ChestXray => {
            let pneumonia = has(Condition::Pneumonia);
            add(ImageFinding::Consolidation, if pneumonia { 0.9 } else { 0.02 }, &mut rng);
            add(ImageFinding::PleuralEffusion, if pneumonia { 0.25 } else { 0.03 }, &mut rng);
            add(ImageFinding::Cardiomegaly, if has(Condition::CoronaryHeartDisease) { 0.55 } else { 0.04 }, &mut rng);
            add(ImageFinding::LungNodule, 0.04, &mut rng);
        }
        StudyKind::ChestCt => {
            add(ImageFinding::Consolidation, if has(Condition::Pneumonia) { 0.9 } else { 0.03 }, &mut rng);
            add(ImageFinding::PleuralEffusion, 0.05, &mut rng);
            add(ImageFinding::LungNodule, 0.2, &mut rng);
        }
        StudyKind::AbdomenCt => {
            add(ImageFinding::KidneyStone, if has(Condition::ChronicKidneyDisease) { 0.3 } else { 0.12 }, &mut rng)
        }
        StudyKind::BrainMr => add(ImageFinding::BrainMass, 0.1, &mut rng),
    }
    out.sort();
    out
}

/// Who and what to render.
#[derive(Debug, Clone)]
pub struct StudySpec {
    /// Goes into PatientID, with Issuer of Patient ID `CARELENS`.
    pub patient_id: String,
    /// DICOM PN, `Family^Given`.
    pub patient_name: String,
    pub birth_date: NaiveDate,
    /// `F`, `M` or `O`.
    pub sex: char,
    pub study_uid: String,
    pub date: NaiveDate,
    pub kind: StudyKind,
    pub findings: Vec<ImageFinding>,
    pub seed: u64,
}

/// One rendered DICOM instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub sop_instance_uid: String,
    pub bytes: Vec<u8>,
    /// Findings visible on this image (empty = normal).
    pub findings: Vec<ImageFinding>,
}

/// Slices per CT/MR series.
pub const SLICES: usize = 8;

/// A DICOM UID `2.25.<n>` from a stable 128-bit hash of `parts`.
pub fn uid(parts: &[&str]) -> String {
    let mut h = Rng::new(0x6361_7265_6c65_6e73);
    for p in parts {
        h.mix(p.as_bytes());
    }
    let n = (u128::from(h.next_u64()) << 64 | u128::from(h.next_u64())) >> 1;
    format!("2.25.{n}")
}

/// Renders a study: one image for X-ray, [`SLICES`] slices for CT and MR.
pub fn render(spec: &StudySpec) -> Result<Vec<Instance>, PhantomError> {
    let mut rng = Rng::new(spec.seed);
    rng.mix(spec.study_uid.as_bytes());
    let acq = Acquisition::random(&mut rng);
    let series_uid = uid(&[&spec.study_uid, "series"]);
    match spec.kind {
        StudyKind::ChestXray => {
            let chest = Chest::new(&mut rng, &spec.findings);
            let size = 256;
            let mut px = acq.sample(size, size, |u, v| chest.density(u, v));
            // Detector response: contrast (gamma), 12-bit range, quantum noise.
            let max = 4095.0;
            for p in px.iter_mut() {
                let x = p.clamp(0.0, 1.0).powf(acq.gamma) + acq.noise * 0.6 * rng.normal();
                *p = (x.clamp(0.0, 1.0) * max).round();
            }
            let mono1 = rng.chance(0.3);
            if mono1 {
                px.iter_mut().for_each(|p| *p = max - *p);
            }
            let mut findings = spec.findings.clone();
            findings.sort();
            let slice = Slice { pixels: &px, rows: size, columns: size, z_mm: 0.0, index: 1, findings };
            let img =
                Pixels::Unsigned { bits_stored: 12, photometric: if mono1 { "MONOCHROME1" } else { "MONOCHROME2" } };
            let window = (max * 0.5, max);
            Ok(vec![write(spec, &series_uid, &slice, img, None, window)?])
        }
        StudyKind::ChestCt | StudyKind::AbdomenCt => {
            let chest = ChestCt::new(&mut rng, &spec.findings);
            let abdomen = AbdomenCt::new(&mut rng, &spec.findings);
            let signed = rng.chance(0.5);
            let size = 160;
            let hu_noise = rng.range(6.0, 22.0);
            let mut out = Vec::new();
            for (i, z) in slice_positions().enumerate() {
                let mut px = acq.sample(size, size, |u, v| match spec.kind {
                    StudyKind::ChestCt => chest.hu(u, v, z),
                    _ => abdomen.hu(u, v, z),
                });
                for p in px.iter_mut() {
                    *p = (*p + hu_noise * rng.normal()).clamp(-1024.0, 3071.0).round();
                    if !signed {
                        *p += 1024.0; // stored = HU + 1024, intercept −1024
                    }
                }
                let findings: Vec<ImageFinding> = spec
                    .findings
                    .iter()
                    .copied()
                    .filter(|&f| match spec.kind {
                        StudyKind::ChestCt => chest.visible(f, z),
                        _ => abdomen.visible(f, z),
                    })
                    .collect();
                let slice = Slice { pixels: &px, rows: size, columns: size, z_mm: z * 100.0, index: i + 1, findings };
                let img = if signed {
                    Pixels::Signed { bits_stored: 16 }
                } else {
                    Pixels::Unsigned { bits_stored: 12, photometric: "MONOCHROME2" }
                };
                let intercept = if signed { 0.0 } else { -1024.0 };
                let window = if spec.kind == StudyKind::ChestCt { (-600.0, 1500.0) } else { (40.0, 400.0) };
                out.push(write(spec, &series_uid, &slice, img, Some(intercept), window)?);
            }
            Ok(out)
        }
        StudyKind::BrainMr => {
            let brain = BrainMr::new(&mut rng, &spec.findings);
            let size = 160;
            let gain = rng.range(800.0, 2000.0);
            let (bias_u, bias_v) = (rng.range(-0.2, 0.2), rng.range(-0.2, 0.2));
            let mut out = Vec::new();
            for (i, z) in slice_positions().enumerate() {
                let mut px = acq.sample(size, size, |u, v| brain.intensity(u, v, z) * (1.0 + bias_u * u + bias_v * v));
                for p in px.iter_mut() {
                    // Magnitude images: noise is Rician, never negative.
                    *p = ((*p + acq.noise * 0.5 * rng.normal()).abs() * gain).round().min(4095.0);
                }
                let findings = spec.findings.iter().copied().filter(|&f| brain.visible(f, z)).collect();
                let slice = Slice { pixels: &px, rows: size, columns: size, z_mm: z * 60.0, index: i + 1, findings };
                let img = Pixels::Unsigned { bits_stored: 12, photometric: "MONOCHROME2" };
                out.push(write(spec, &series_uid, &slice, img, None, (gain * 0.5, gain))?);
            }
            Ok(out)
        }
    }
}

fn slice_positions() -> impl Iterator<Item = f32> {
    (0..SLICES).map(|i| -0.7 + 1.4 * i as f32 / (SLICES - 1) as f32)
}

/// Patient positioning and detector settings.
#[derive(Debug, Clone, Copy)]
struct Acquisition {
    rotation: f32,
    scale: f32,
    shift_u: f32,
    shift_v: f32,
    gamma: f32,
    noise: f32,
}

impl Acquisition {
    fn random(rng: &mut Rng) -> Self {
        Self {
            rotation: rng.range(-4.0, 4.0).to_radians(),
            scale: rng.range(0.9, 1.1),
            shift_u: rng.range(-0.06, 0.06),
            shift_v: rng.range(-0.06, 0.06),
            gamma: rng.range(0.8, 1.25),
            noise: rng.range(0.01, 0.04),
        }
    }

    /// Evaluates `f` in patient coordinates for each pixel (2×2 supersampled).
    fn sample(&self, rows: usize, cols: usize, f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
        let (s, c) = self.rotation.sin_cos();
        let mut out = Vec::with_capacity(rows * cols);
        for y in 0..rows {
            for x in 0..cols {
                let mut acc = 0.0;
                for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let px = ((x as f32 + dx) / cols as f32) * 2.0 - 1.0;
                    let py = ((y as f32 + dy) / rows as f32) * 2.0 - 1.0;
                    let (px, py) = ((px - self.shift_u) / self.scale, (py - self.shift_v) / self.scale);
                    acc += f(c * px + s * py, -s * px + c * py);
                }
                out.push(acc / 4.0);
            }
        }
        out
    }
}

struct Slice<'a> {
    pixels: &'a [f32],
    rows: usize,
    columns: usize,
    z_mm: f32,
    index: usize,
    findings: Vec<ImageFinding>,
}

#[derive(Clone, Copy)]
enum Pixels {
    Unsigned { bits_stored: u16, photometric: &'static str },
    Signed { bits_stored: u16 },
}

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const CR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
const CT_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// carelens' implementation class UID (2.25 root, derived from the name).
const IMPLEMENTATION_UID: &str = "2.25.208512640357917498130349395786571624451";

fn write(
    spec: &StudySpec,
    series_uid: &str,
    slice: &Slice<'_>,
    pixels: Pixels,
    rescale_intercept: Option<f32>,
    window: (f32, f32),
) -> Result<Instance, PhantomError> {
    let sop_uid = uid(&[&spec.study_uid, &slice.index.to_string(), "instance"]);
    let (sop_class, modality, body_part, description) = match spec.kind {
        StudyKind::ChestXray => (CR_STORAGE, "CR", "CHEST", "Chest X-ray PA"),
        StudyKind::ChestCt => (CT_STORAGE, "CT", "CHEST", "CT chest"),
        StudyKind::AbdomenCt => (CT_STORAGE, "CT", "ABDOMEN", "CT abdomen"),
        StudyKind::BrainMr => (MR_STORAGE, "MR", "HEAD", "MR brain T1 post-contrast"),
    };
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };
    let s = |v: &str| PrimitiveValue::from(v.to_owned());
    let da = |d: NaiveDate| PrimitiveValue::from(d.format("%Y%m%d").to_string());
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192"));
    put(tags::IMAGE_TYPE, VR::CS, s("ORIGINAL\\PRIMARY"));
    put(tags::SOP_CLASS_UID, VR::UI, s(sop_class));
    put(tags::SOP_INSTANCE_UID, VR::UI, s(&sop_uid));
    put(tags::STUDY_DATE, VR::DA, da(spec.date));
    put(tags::SERIES_DATE, VR::DA, da(spec.date));
    put(tags::CONTENT_DATE, VR::DA, da(spec.date));
    put(tags::STUDY_TIME, VR::TM, s("093000"));
    put(tags::ACCESSION_NUMBER, VR::SH, s(&format!("A{}", &spec.study_uid[spec.study_uid.len().saturating_sub(10)..])));
    put(tags::MODALITY, VR::CS, s(modality));
    put(tags::MANUFACTURER, VR::LO, s("carelens phantom"));
    put(tags::INSTITUTION_NAME, VR::LO, s("carelens synthetic clinic"));
    put(tags::REFERRING_PHYSICIAN_NAME, VR::PN, s("Synthetic^Referrer"));
    put(tags::STUDY_DESCRIPTION, VR::LO, s(description));
    put(tags::PATIENT_NAME, VR::PN, s(&spec.patient_name));
    put(tags::PATIENT_ID, VR::LO, s(&spec.patient_id));
    put(tags::ISSUER_OF_PATIENT_ID, VR::LO, s("CARELENS"));
    put(tags::PATIENT_BIRTH_DATE, VR::DA, da(spec.birth_date));
    put(tags::PATIENT_SEX, VR::CS, s(&spec.sex.to_string()));
    put(tags::BODY_PART_EXAMINED, VR::CS, s(body_part));
    put(tags::STUDY_INSTANCE_UID, VR::UI, s(&spec.study_uid));
    put(tags::SERIES_INSTANCE_UID, VR::UI, s(series_uid));
    put(tags::STUDY_ID, VR::SH, s("1"));
    put(tags::SERIES_NUMBER, VR::IS, s("1"));
    put(tags::INSTANCE_NUMBER, VR::IS, s(&slice.index.to_string()));
    if spec.kind != StudyKind::ChestXray {
        put(tags::SLICE_THICKNESS, VR::DS, s("5"));
        put(tags::IMAGE_POSITION_PATIENT, VR::DS, s(&format!("-200\\-200\\{:.1}", slice.z_mm)));
        put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, s("1\\0\\0\\0\\1\\0"));
        put(tags::SLICE_LOCATION, VR::DS, s(&format!("{:.1}", slice.z_mm)));
        put(tags::PIXEL_SPACING, VR::DS, s("2.5\\2.5"));
    } else {
        put(tags::VIEW_POSITION, VR::CS, s("PA"));
        put(tags::IMAGER_PIXEL_SPACING, VR::DS, s("1.4\\1.4"));
    }
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    let (photometric, bits_stored, signed) = match pixels {
        Pixels::Unsigned { bits_stored, photometric } => (photometric, bits_stored, false),
        Pixels::Signed { bits_stored } => ("MONOCHROME2", bits_stored, true),
    };
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s(photometric));
    put(tags::ROWS, VR::US, PrimitiveValue::from(slice.rows as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(slice.columns as u16));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits_stored));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits_stored - 1));
    put(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(u16::from(signed)));
    put(tags::BURNED_IN_ANNOTATION, VR::CS, s("NO"));
    put(tags::WINDOW_CENTER, VR::DS, s(&format!("{:.0}", window.0)));
    put(tags::WINDOW_WIDTH, VR::DS, s(&format!("{:.0}", window.1)));
    if let Some(intercept) = rescale_intercept {
        put(tags::RESCALE_INTERCEPT, VR::DS, s(&format!("{intercept:.0}")));
        put(tags::RESCALE_SLOPE, VR::DS, s("1"));
        put(tags::RESCALE_TYPE, VR::LO, s("HU"));
    }
    let bytes: Vec<u8> = slice
        .pixels
        .iter()
        .flat_map(|&v| if signed { (v as i16).to_le_bytes() } else { (v.max(0.0) as u16).to_le_bytes() })
        .collect();
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(bytes));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_uid.as_str())
                .implementation_class_uid(IMPLEMENTATION_UID)
                .implementation_version_name("CARELENS_0"),
        )
        .map_err(|e| PhantomError::Write(e.to_string()))?;
    let mut out = Vec::with_capacity(slice.pixels.len() * 2 + 2048);
    file.write_all(&mut out).map_err(|e| PhantomError::Write(e.to_string()))?;
    Ok(Instance { sop_instance_uid: sop_uid, bytes: out, findings: slice.findings.clone() })
}
