//! Density functions of procedurally generated anatomy, evaluated per pixel in normalised
//! patient coordinates: `u` from −1 (patient's right, image left) to 1, `v` from −1 (head /
//! anterior) to 1 (feet / posterior), `z` along the slice axis from −1 to 1.

use carelens_domain::ImageFinding;

use crate::rng::Rng;

/// Smooth step from 1 inside to 0 outside, over `soft` (in the shape's normalised radius).
fn inside(d: f32, soft: f32) -> f32 {
    (0.5 - (d - 1.0) / soft.max(1e-3)).clamp(0.0, 1.0)
}

/// Normalised elliptical distance (1 on the boundary).
fn ell(u: f32, v: f32, cu: f32, cv: f32, ru: f32, rv: f32) -> f32 {
    (((u - cu) / ru).powi(2) + ((v - cv) / rv).powi(2)).sqrt()
}

/// Low-frequency texture from a few random sinusoids (lung markings, bowel, parenchyma).
#[derive(Debug, Clone)]
pub struct Texture {
    waves: Vec<(f32, f32, f32, f32)>,
}

impl Texture {
    pub fn new(rng: &mut Rng, n: usize, freq: f32) -> Self {
        let waves = (0..n)
            .map(|_| {
                let a = rng.range(0.0, std::f32::consts::TAU);
                let f = freq * rng.range(0.5, 1.5);
                (a.cos() * f, a.sin() * f, rng.range(0.0, std::f32::consts::TAU), rng.range(0.3, 1.0))
            })
            .collect();
        Self { waves }
    }

    /// Roughly in [−1, 1].
    pub fn at(&self, u: f32, v: f32) -> f32 {
        let total: f32 = self.waves.iter().map(|w| w.3).sum::<f32>().max(1e-3);
        self.waves.iter().map(|&(fu, fv, p, a)| a * (fu * u + fv * v + p).sin()).sum::<f32>() / total
    }
}

/// A chest radiograph (PA): relative attenuation in about [0, 1].
#[derive(Debug, Clone)]
pub struct Chest {
    heart_width: f32,
    lung_height: f32,
    texture: Texture,
    rib_phase: f32,
    /// (centre u, centre v, radius u, radius v, density) of a consolidation.
    consolidation: Option<(f32, f32, f32, f32, f32)>,
    /// (side: −1 right / +1 left, fluid level v) of an effusion.
    effusion: Option<(f32, f32)>,
    nodule: Option<(f32, f32, f32)>,
}

impl Chest {
    pub fn new(rng: &mut Rng, findings: &[ImageFinding]) -> Self {
        let has = |f| findings.contains(&f);
        // Cardiothoracic ratio ~0.42–0.48 when normal, 0.56–0.68 when enlarged.
        let ctr = if has(ImageFinding::Cardiomegaly) { rng.range(0.56, 0.68) } else { rng.range(0.40, 0.48) };
        let consolidation = has(ImageFinding::Consolidation).then(|| {
            let side = if rng.chance(0.5) { -1.0 } else { 1.0 };
            (
                side * rng.range(0.3, 0.5),
                rng.range(0.0, 0.35),
                rng.range(0.12, 0.22),
                rng.range(0.1, 0.2),
                rng.range(0.25, 0.4),
            )
        });
        let effusion = has(ImageFinding::PleuralEffusion)
            .then(|| (if rng.chance(0.5) { -1.0 } else { 1.0 }, rng.range(0.28, 0.45)));
        let nodule = has(ImageFinding::LungNodule).then(|| {
            let side = if rng.chance(0.5) { -1.0 } else { 1.0 };
            (side * rng.range(0.25, 0.55), rng.range(-0.45, 0.2), rng.range(0.025, 0.045))
        });
        Self {
            heart_width: ctr * 0.78,
            lung_height: rng.range(0.5, 0.62),
            texture: Texture::new(rng, 12, 9.0),
            rib_phase: rng.range(0.0, 1.0),
            consolidation,
            effusion,
            nodule,
        }
    }

    pub fn density(&self, u: f32, v: f32) -> f32 {
        let body = inside(ell(u, v, 0.0, 0.05, 0.86, 1.05), 0.04);
        if body <= 0.0 {
            return 0.02;
        }
        let mut d = 0.42 * body;
        // Diaphragm: the lungs end at a dome; below is abdomen (dense).
        let dome = |side: f32| 0.55 - 0.18 * (1.0 - ((u - side * 0.4) / 0.4).powi(2)).max(0.0);
        let mut lung = 0.0;
        for side in [-1.0f32, 1.0] {
            let l = inside(ell(u, v, side * 0.4, -0.05, 0.3, self.lung_height), 0.08);
            let below = (v - dome(side)).max(0.0);
            let l = l * (1.0 - (below * 30.0).min(1.0));
            lung = f32::max(lung, l);
        }
        d -= 0.3 * lung * (1.0 + 0.15 * self.texture.at(u, v));
        // Ribs: curved bands over the lungs.
        let rib_v = v + 0.25 * u * u;
        let ribs = ((rib_v * 9.0 + self.rib_phase) * std::f32::consts::PI).sin().max(0.0).powi(6);
        d += 0.12 * ribs * lung.max(0.3 * body);
        // Mediastinum and spine.
        d += 0.18 * inside(ell(u, v, 0.0, -0.1, 0.09, 0.9), 0.2);
        // Heart: its left border reaches further (image right).
        let heart = inside(ell(u, v, 0.08, 0.28, self.heart_width, 0.26), 0.12);
        d = d * (1.0 - heart) + 0.5 * heart;
        // Clavicles.
        for side in [-1.0f32, 1.0] {
            let along = (u - side * 0.3) * side;
            let line = v + 0.62 - 0.2 * along;
            if along.abs() < 0.3 {
                d += 0.15 * inside(line.abs() / 0.035, 0.5);
            }
        }
        if let Some((cu, cv, ru, rv, k)) = self.consolidation {
            d += k * inside(ell(u, v, cu, cv, ru, rv), 0.9) * lung;
        }
        if let Some((side, level)) = self.effusion {
            // Fluid fills the base with a meniscus rising to the lateral wall: the angle blunts.
            let lateral = ((u - side * 0.4) * side / 0.3).clamp(-1.0, 1.0);
            let surface = level - 0.12 * lateral.max(0.0);
            let fluid = inside(ell(u, v, side * 0.4, 0.3, 0.34, 0.5), 0.1) * ((v - surface) * 25.0).clamp(0.0, 1.0);
            d = d.max(0.47 * fluid + d * (1.0 - fluid));
        }
        if let Some((cu, cv, r)) = self.nodule {
            d += 0.28 * inside(ell(u, v, cu, cv, r, r), 0.4);
        }
        d.clamp(0.0, 1.0)
    }
}

/// A chest CT slice in Hounsfield units; `z` from −1 (apex) to 1 (base).
#[derive(Debug, Clone)]
pub struct ChestCt {
    texture: Texture,
    /// (u, v, z, radius)
    nodule: Option<(f32, f32, f32, f32)>,
    consolidation: Option<(f32, f32, f32, f32)>,
    effusion: Option<f32>,
}

impl ChestCt {
    pub fn new(rng: &mut Rng, findings: &[ImageFinding]) -> Self {
        let has = |f| findings.contains(&f);
        let side = |rng: &mut Rng| if rng.chance(0.5) { -1.0 } else { 1.0 };
        Self {
            texture: Texture::new(rng, 10, 14.0),
            nodule: has(ImageFinding::LungNodule).then(|| {
                let s = side(rng);
                (s * rng.range(0.3, 0.55), rng.range(-0.2, 0.25), rng.range(-0.5, 0.5), rng.range(0.04, 0.07))
            }),
            consolidation: has(ImageFinding::Consolidation).then(|| {
                let s = side(rng);
                (s * rng.range(0.35, 0.5), rng.range(0.0, 0.3), rng.range(0.1, 0.6), rng.range(0.15, 0.22))
            }),
            effusion: has(ImageFinding::PleuralEffusion).then(|| side(rng)),
        }
    }

    pub fn hu(&self, u: f32, v: f32, z: f32) -> f32 {
        let body = ell(u, v, 0.0, 0.0, 0.9, 0.65);
        if body > 1.0 {
            return -1000.0;
        }
        let mut hu = if body > 0.93 { -100.0 } else { 40.0 };
        // Lungs, smaller at the apex.
        let scale = 0.75 + 0.25 * (1.0 - z.abs());
        let mut in_lung = false;
        for side in [-1.0f32, 1.0] {
            if ell(u, v, side * 0.42, 0.0, 0.33 * scale, 0.48 * scale) < 1.0 {
                in_lung = true;
                // Vessels: thin bright branching structures from the texture.
                let vessel = (self.texture.at(u * 1.3, v * 1.3 + z) > 0.82) as u8 as f32;
                hu = -850.0 + 30.0 * self.texture.at(u, v + z) + 800.0 * vessel;
                if let Some(s) = self.effusion
                    && s == side
                    && z > 0.2
                    && v > 0.45 - 0.5 * (z - 0.2)
                {
                    hu = 15.0;
                }
            }
        }
        if !in_lung {
            // Heart in the lower slices, aorta above.
            if z > -0.1 && ell(u, v, 0.1, -0.15, 0.28, 0.25) < 1.0 {
                hu = 45.0;
            }
            if z <= -0.1 && ell(u, v, 0.05, 0.1, 0.08, 0.08) < 1.0 {
                hu = 40.0;
            }
        }
        // Spine and sternum, ribs as a ring of dots.
        if ell(u, v, 0.0, 0.45, 0.11, 0.11) < 1.0 {
            hu = 700.0;
        }
        if ell(u, v, 0.0, -0.58, 0.06, 0.03) < 1.0 {
            hu = 500.0;
        }
        let ang = v.atan2(u);
        if (0.84..0.9).contains(&body) && (ang * 6.0).sin() > 0.7 {
            hu = 650.0;
        }
        if in_lung && let Some((cu, cv, cz, r)) = self.nodule {
            let d = ((u - cu).powi(2) + (v - cv).powi(2) + ((z - cz) * 0.25).powi(2)).sqrt();
            if d < r {
                hu = 45.0;
            }
        }
        if in_lung && let Some((cu, cv, cz, r)) = self.consolidation {
            let d = ((u - cu).powi(2) + (v - cv).powi(2)).sqrt() / r + ((z - cz) / 0.5).abs();
            if d < 1.0 {
                hu = -20.0 + 40.0 * self.texture.at(u * 2.0, v * 2.0);
            }
        }
        hu
    }

    /// Whether the finding reaches slice `z` (per-slice labels).
    pub fn visible(&self, finding: ImageFinding, z: f32) -> bool {
        match finding {
            ImageFinding::LungNodule => self.nodule.is_some_and(|(_, _, cz, r)| ((z - cz) * 0.25).abs() < r * 0.9),
            ImageFinding::Consolidation => self.consolidation.is_some_and(|(_, _, cz, _)| ((z - cz) / 0.5).abs() < 0.8),
            ImageFinding::PleuralEffusion => self.effusion.is_some() && z > 0.3,
            _ => false,
        }
    }
}

/// An abdominal CT slice in Hounsfield units; `z` from −1 (upper) to 1 (lower).
#[derive(Debug, Clone)]
pub struct AbdomenCt {
    texture: Texture,
    /// (side, v offset, z, radius) of a calculus in a kidney.
    stone: Option<(f32, f32, f32, f32)>,
}

impl AbdomenCt {
    pub fn new(rng: &mut Rng, findings: &[ImageFinding]) -> Self {
        Self {
            texture: Texture::new(rng, 10, 10.0),
            stone: findings.contains(&ImageFinding::KidneyStone).then(|| {
                (
                    if rng.chance(0.5) { -1.0 } else { 1.0 },
                    rng.range(-0.05, 0.05),
                    rng.range(-0.4, 0.4),
                    rng.range(0.025, 0.04),
                )
            }),
        }
    }

    pub fn hu(&self, u: f32, v: f32, z: f32) -> f32 {
        let body = ell(u, v, 0.0, 0.0, 0.88, 0.7);
        if body > 1.0 {
            return -1000.0;
        }
        let mut hu = if body > 0.9 { -100.0 } else { 30.0 + 15.0 * self.texture.at(u, v + z) };
        // Bowel gas pockets.
        if self.texture.at(u * 2.0 + z, v * 2.0) > 0.75 && v < 0.2 {
            hu = -900.0;
        }
        // Liver (patient's right = image left), upper slices.
        if z < 0.3 && ell(u, v, -0.4, -0.1, 0.4, 0.42) < 1.0 {
            hu = 60.0;
        }
        // Kidneys, posterior.
        let kidney = |side: f32| ell(u, v, side * 0.38, 0.35, 0.12, 0.16);
        let near = kidney(-1.0).min(kidney(1.0));
        let in_kidney = z.abs() < 0.7 && near < 1.0;
        if z.abs() < 0.7 && (1.0..1.35).contains(&near) {
            hu = -90.0; // perirenal fat
        }
        if in_kidney {
            hu = 150.0; // enhancing parenchyma (portal venous phase)
        }
        if ell(u, v, 0.05, 0.25, 0.06, 0.06) < 1.0 {
            hu = 40.0; // aorta
        }
        if ell(u, v, 0.0, 0.5, 0.12, 0.12) < 1.0 {
            hu = 700.0; // vertebra
        }
        if in_kidney && let Some((side, dv, sz, r)) = self.stone {
            let d = ((u - side * 0.38).powi(2) + (v - 0.35 - dv).powi(2) + ((z - sz) * 0.2).powi(2)).sqrt();
            if d < r {
                hu = 900.0;
            }
        }
        hu
    }

    pub fn visible(&self, finding: ImageFinding, z: f32) -> bool {
        finding == ImageFinding::KidneyStone && self.stone.is_some_and(|(_, _, sz, r)| ((z - sz) * 0.2).abs() < r * 0.9)
    }
}

/// A T1-weighted post-contrast brain MR slice, arbitrary units in about [0, 1].
#[derive(Debug, Clone)]
pub struct BrainMr {
    texture: Texture,
    /// (u, v, z, radius)
    mass: Option<(f32, f32, f32, f32)>,
}

impl BrainMr {
    pub fn new(rng: &mut Rng, findings: &[ImageFinding]) -> Self {
        Self {
            texture: Texture::new(rng, 8, 12.0),
            mass: findings.contains(&ImageFinding::BrainMass).then(|| {
                (
                    if rng.chance(0.5) { -1.0 } else { 1.0 } * rng.range(0.2, 0.45),
                    rng.range(-0.4, 0.3),
                    rng.range(-0.3, 0.3),
                    rng.range(0.1, 0.18),
                )
            }),
        }
    }

    pub fn intensity(&self, u: f32, v: f32, z: f32) -> f32 {
        let scale = (1.0 - 0.5 * z * z).max(0.2);
        let head = ell(u, v, 0.0, 0.0, 0.78 * scale, 0.92 * scale);
        if head > 1.0 {
            return 0.0;
        }
        if head > 0.94 {
            return 0.85; // scalp fat
        }
        if head > 0.88 {
            return 0.08; // skull
        }
        let mut x = 0.48 + 0.03 * self.texture.at(u, v + z);
        if head < 0.7 {
            x = 0.62 + 0.03 * self.texture.at(u * 1.5, v * 1.5); // white matter
        }
        // Lateral ventricles in the middle slices.
        if z.abs() < 0.4 {
            for side in [-1.0f32, 1.0] {
                if ell(u, v, side * 0.12, -0.05, 0.07, 0.28 * (1.0 - z.abs())) < 1.0 {
                    x = 0.15;
                }
            }
        }
        if let Some((cu, cv, cz, r)) = self.mass {
            let d = ((u - cu).powi(2) + (v - cv).powi(2) + ((z - cz) * 0.6).powi(2)).sqrt() / r;
            if d < 1.0 {
                // Enhancing rim, darker necrotic core.
                x = if d > 0.75 { 0.95 } else { 0.35 };
            } else if d < 1.6 {
                x *= 0.8; // oedema
            }
        }
        x
    }

    pub fn visible(&self, finding: ImageFinding, z: f32) -> bool {
        finding == ImageFinding::BrainMass && self.mass.is_some_and(|(_, _, cz, r)| ((z - cz) * 0.6).abs() < r * 0.85)
    }
}
