//! Small-cell suppression with complementary suppression.
//!
//! Primary: a cell is suppressed when any of its person counts is below k (numerator counts
//! of 0 are published: an empty cell discloses no one). Complementary: within every group of
//! cells that differ in one stratum only (whose total another query publishes), a single
//! suppressed cell could be recovered by subtracting the others from the total, so the
//! published cell with the fewest persons is suppressed too; this repeats until no group has
//! exactly one suppressed cell. Suppressed cells keep their keys, lose every measure and say
//! `suppressed`; they are never dropped.

use std::collections::BTreeMap;

use crate::kpi::Row;

/// A person count a cell is published on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    pub count: f64,
    /// Whether 0 may be published (numerators); denominators of 0 are suppressed.
    pub zero_ok: bool,
}

impl Gate {
    fn fails(&self, k: f64) -> bool {
        self.count < k && !(self.zero_ok && self.count == 0.0)
    }
}

/// Suppresses `rows` in place; `dims` are the key positions of strata (fixed keys such as the
/// diagnosis are not summed over). Returns the number of suppressed cells.
pub fn suppress(rows: &mut [Row], dims: &[usize], k: f64) -> usize {
    for r in rows.iter_mut() {
        if r.gates.iter().any(|g| g.fails(k)) {
            r.suppressed = true;
        }
    }
    loop {
        let mut changed = false;
        for &d in dims {
            let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
            for (i, r) in rows.iter().enumerate() {
                let key: Vec<String> =
                    r.keys.iter().enumerate().filter(|(j, _)| *j != d).map(|(_, s)| s.clone()).collect();
                groups.entry(key).or_default().push(i);
            }
            for members in groups.into_values() {
                let hidden = members.iter().filter(|&&i| rows[i].suppressed).count();
                if hidden != 1 || members.len() < 2 {
                    continue;
                }
                let smallest = members.iter().copied().filter(|&i| !rows[i].suppressed).min_by(|&a, &b| {
                    let key = |i: usize| rows[i].gates.iter().map(|g| g.count).collect::<Vec<_>>();
                    key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
                });
                if let Some(i) = smallest {
                    rows[i].suppressed = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut n = 0;
    for r in rows.iter_mut() {
        if r.suppressed {
            r.values.iter_mut().for_each(|v| *v = None);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(keys: &[&str], cases: f64, persons: f64) -> Row {
        Row {
            keys: keys.iter().map(|s| s.to_string()).collect(),
            values: vec![Some(cases / persons)],
            suppressed: false,
            gates: vec![Gate { count: cases, zero_ok: true }, Gate { count: persons, zero_ok: false }],
        }
    }

    fn hidden(rows: &[Row]) -> Vec<String> {
        rows.iter().filter(|r| r.suppressed).map(|r| r.keys.join("/")).collect()
    }

    #[test]
    fn small_numerators_and_denominators_are_suppressed_zero_numerators_are_not() {
        let mut rows =
            vec![row(&["a"], 0.0, 50.0), row(&["b"], 3.0, 50.0), row(&["c"], 20.0, 40.0), row(&["d"], 12.0, 12.0)];
        // One dimension: "b" alone would be recoverable from the total, so the smallest other
        // published cell ("a", 0 cases) goes too.
        let n = suppress(&mut rows, &[0], 11.0);
        assert_eq!(hidden(&rows), ["a", "b"]);
        assert_eq!(n, 2);
        assert!(rows[1].values.iter().all(Option::is_none));
        assert_eq!(rows[2].values[0], Some(0.5));
    }

    #[test]
    fn complementary_suppression_closes_every_margin() {
        // sex × region; only female/north is small.
        let mut rows = vec![
            row(&["f", "north"], 5.0, 100.0),
            row(&["f", "south"], 40.0, 100.0),
            row(&["m", "north"], 30.0, 100.0),
            row(&["m", "south"], 50.0, 100.0),
        ];
        suppress(&mut rows, &[0, 1], 11.0);
        // Region margin (f) and sex margin (north) each need a second cell, and then m/south
        // closes the remaining margins: no row or column with a single hidden cell.
        assert_eq!(hidden(&rows), ["f/north", "f/south", "m/north", "m/south"]);
    }

    #[test]
    fn fixed_keys_are_not_margins() {
        // Two diagnoses, no strata: one small cell stays the only suppressed one.
        let mut rows = vec![row(&["E11"], 4.0, 100.0), row(&["I10"], 30.0, 100.0)];
        suppress(&mut rows, &[], 11.0);
        assert_eq!(hidden(&rows), ["E11"]);
    }

    #[test]
    fn configurable_k() {
        let mut rows = vec![row(&["a"], 4.0, 100.0), row(&["b"], 6.0, 100.0)];
        suppress(&mut rows, &[0], 5.0);
        assert_eq!(hidden(&rows), ["a", "b"]);
        let mut rows = vec![row(&["a"], 4.0, 100.0), row(&["b"], 6.0, 100.0)];
        suppress(&mut rows, &[0], 3.0);
        assert!(hidden(&rows).is_empty());
    }
}
