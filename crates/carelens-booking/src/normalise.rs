//! Practitioner identity across platforms. Each platform spells the same doctor differently
//! (`Dr. med. Anna Müller` / first `Anna`, last `Müller`; `Hauptstr. 12` / `Hauptstraße 12`),
//! so a practitioner is matched on a [`PractitionerKey`]: family name, street and house
//! number, and postcode, each folded (lower case, umlauts spelled out, titles and
//! abbreviations expanded).

use carelens_domain::Provider;
use carelens_domain::places::fold;

/// Words in a name that are not the family name.
const NOT_NAMES: &[&str] = &[
    "dr",
    "med",
    "dent",
    "univ",
    "prof",
    "pd",
    "dipl",
    "psych",
    "rer",
    "nat",
    "phil",
    "mult",
    "h",
    "c",
    "praxis",
    "gemeinschaftspraxis",
    "mvz",
    "kollegen",
    "kollegin",
    "und",
    "partner",
    "fachaerztin",
    "fachaerzt",
    "fuer",
];

/// How a practitioner is recognised on every platform and in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PractitionerKey {
    pub family: String,
    pub street: String,
    pub postcode: String,
}

impl std::fmt::Display for PractitionerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}, {}", self.family, self.street, self.postcode)
    }
}

impl PractitionerKey {
    /// From a display name (titles, given names and a trailing `(Specialty)` are ignored: the
    /// family name is the last remaining word), a street with house number and a postcode.
    pub fn new(name: &str, street: &str, postcode: &str) -> Self {
        Self { family: family_name(name), street: street_key(street), postcode: postcode.trim().to_owned() }
    }

    /// The key of a directory entry.
    pub fn of(p: &Provider) -> Self {
        Self::new(&p.name, &p.address.street, &p.address.postcode)
    }
}

/// The family name in a display name, folded: `Dr. med. Anna Müller (Kardiologie)` → `mueller`,
/// `Praxis Dr. Weiß & Kollegen` → `weiss`.
pub fn family_name(name: &str) -> String {
    let without_parens = name.split('(').next().unwrap_or(name);
    fold(without_parens)
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .rfind(|w| !w.is_empty() && !NOT_NAMES.contains(w))
        .unwrap_or_default()
        .to_owned()
}

/// A street with house number, folded: `Hauptstr. 12` and `Hauptstraße 12a` → `hauptstrasse 12`
/// and `hauptstrasse 12a`; `Str.`/`str.`/`Strasse` are one word, spaces and hyphens collapse.
pub fn street_key(street: &str) -> String {
    let f = fold(street);
    let mut words: Vec<String> = Vec::new();
    for w in f.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()) {
        let w = w.trim_end_matches('.');
        let w = if let Some(stem) = w.strip_suffix("str") { format!("{stem}strasse") } else { w.to_owned() };
        words.push(w);
    }
    // "Am Markt 3" and "Am-Markt 3" alike.
    words.join(" ").replace('-', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_practitioner_spelled_two_ways_has_one_key() {
        let a = PractitionerKey::new("Dr. med. Anna Müller", "Hauptstr. 12", "10117");
        let b = PractitionerKey::new("Müller (Kardiologie)", "Hauptstraße 12", " 10117 ");
        assert_eq!(a, b);
        assert_eq!(a.family, "mueller");
        assert_eq!(a.street, "hauptstrasse 12");
        assert_eq!(family_name("Praxis Dr. Weiß & Kollegen (Dermatologie)"), "weiss");
        assert_eq!(family_name("Prof. Dr. med. Hans-Peter Schulze-Wendt"), "schulze-wendt");
        assert_ne!(a, PractitionerKey::new("Dr. Anna Müller", "Hauptstr. 14", "10117"));
    }
}
