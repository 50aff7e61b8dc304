//! Interval estimates, the European Standard Population and trend tests.

/// The standard normal quantile for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval (95 %) for `x` events out of `n` trials: well-behaved at 0 and n,
/// unlike the Wald interval. `None` when `n` is 0.
pub fn wilson(x: f64, n: f64) -> Option<(f64, f64)> {
    if n <= 0.0 {
        return None;
    }
    let p = x / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// 95 % interval for a Poisson count by Byar's approximation (within 1 % of the exact interval
/// from about 5 events; exact upper bound 3.689 at 0 events).
pub fn poisson(count: f64) -> (f64, f64) {
    let lower =
        if count <= 0.0 { 0.0 } else { count * (1.0 - 1.0 / (9.0 * count) - Z95 / (3.0 * count.sqrt())).powi(3) };
    let a = count + 1.0;
    let upper = if count <= 0.0 { 3.688_879_454 } else { a * (1.0 - 1.0 / (9.0 * a) + Z95 / (3.0 * a.sqrt())).powi(3) };
    (lower.max(0.0), upper)
}

/// The European Standard Population 2013 (Eurostat), per 100 000, by five-year age band.
pub const ESP2013: [(&str, f64); 19] = [
    ("00-04", 5000.0),
    ("05-09", 5500.0),
    ("10-14", 5500.0),
    ("15-19", 5500.0),
    ("20-24", 6000.0),
    ("25-29", 6000.0),
    ("30-34", 6500.0),
    ("35-39", 7000.0),
    ("40-44", 7000.0),
    ("45-49", 7000.0),
    ("50-54", 7000.0),
    ("55-59", 6500.0),
    ("60-64", 6000.0),
    ("65-69", 5500.0),
    ("70-74", 5000.0),
    ("75-79", 4000.0),
    ("80-84", 2500.0),
    ("85-89", 1500.0),
    ("90+", 1000.0),
];

/// The ESP 2013 band of an age in completed years: `00-04` … `85-89`, `90+`.
pub fn age_band(age: i32) -> &'static str {
    let i = (age.max(0) / 5).min(18) as usize;
    ESP2013[i].0
}

/// A linear trend over equally spaced periods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Change of the value per period (ordinary least squares).
    pub slope: f64,
    pub low: f64,
    pub high: f64,
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Rising,
    Falling,
    /// The 95 % interval of the slope includes 0.
    Stable,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rising => "rising",
            Self::Falling => "falling",
            Self::Stable => "stable",
        }
    }
}

/// Student's t quantile (two-sided 95 %) for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 { f64::INFINITY } else { T.get(df - 1).copied().unwrap_or(Z95) }
}

/// OLS slope of `values` over their positions `xs` with a t-based 95 % interval; the
/// direction is rising or falling only when the interval excludes 0. `None` below 3 points.
pub fn trend(points: &[(f64, f64)]) -> Option<Trend> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = points.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
    let se = (sse / (nf - 2.0) / sxx).sqrt();
    let half = t95(n - 2) * se;
    let (low, high) = (slope - half, slope + half);
    let direction = if low > 0.0 {
        Direction::Rising
    } else if high < 0.0 {
        Direction::Falling
    } else {
        Direction::Stable
    };
    Some(Trend { slope, low, high, direction })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553–0.3662.
        let (lo, hi) = wilson(81.0, 263.0).unwrap();
        close(lo, 0.2553, 5e-4);
        close(hi, 0.3662, 5e-4);
        // 0/10 → 0–0.2775.
        let (lo, hi) = wilson(0.0, 10.0).unwrap();
        close(lo, 0.0, 1e-12);
        close(hi, 0.2775, 5e-4);
        assert!(wilson(0.0, 0.0).is_none());
    }

    #[test]
    fn byar_is_close_to_the_exact_poisson_interval() {
        // Exact 95 % limits for 10 events: 4.795–18.390.
        let (lo, hi) = poisson(10.0);
        close(lo, 4.795, 0.02);
        close(hi, 18.39, 0.05);
        assert_eq!(poisson(0.0).0, 0.0);
    }

    #[test]
    fn esp_weights_sum_to_100000_and_bands_cover_every_age() {
        assert_eq!(ESP2013.iter().map(|b| b.1).sum::<f64>(), 100_000.0);
        assert_eq!(age_band(0), "00-04");
        assert_eq!(age_band(4), "00-04");
        assert_eq!(age_band(5), "05-09");
        assert_eq!(age_band(89), "85-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(117), "90+");
    }

    #[test]
    fn trend_directions() {
        let up: Vec<_> = (0..6)
            .map(|i| (f64::from(i), 1.0 + 0.5 * f64::from(i) + [0.01, -0.02, 0.0, 0.02, -0.01, 0.0][i as usize]))
            .collect();
        let t = trend(&up).unwrap();
        assert_eq!(t.direction, Direction::Rising);
        close(t.slope, 0.5, 0.02);
        let flat = [(0.0, 1.0), (1.0, 3.0), (2.0, 1.0), (3.0, 3.0)];
        assert_eq!(trend(&flat).unwrap().direction, Direction::Stable);
        let down = [(0.0, 9.0), (1.0, 7.0), (2.0, 5.1), (3.0, 3.0)];
        assert_eq!(trend(&down).unwrap().direction, Direction::Falling);
        assert!(trend(&[(0.0, 1.0), (1.0, 2.0)]).is_none());
    }
}
