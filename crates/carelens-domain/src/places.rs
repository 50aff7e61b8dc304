//! German reference places: cities and rural districts with a postcode, coordinates and
//! population. Shared by the population generator (where people and practices are) and the
//! booking search (where "near 10115" or "near Köln" is).

/// A city or district: its name, region (Bundesland), central postcode, coordinates.
pub struct City {
    pub name: &'static str,
    pub region: &'static str,
    pub postcode: u32,
    pub lat: f64,
    pub lon: f64,
    /// Population in thousands (the sampling weight).
    pub population_k: f64,
}

macro_rules! cities {
    ($(($name:literal, $region:literal, $pc:literal, $lat:literal, $lon:literal, $pop:literal)),* $(,)?) => {
        pub const CITIES: &[City] = &[$(City { name: $name, region: $region, postcode: $pc, lat: $lat, lon: $lon, population_k: $pop }),*];
    };
}

cities![
    ("Berlin", "Berlin", 10115, 52.520, 13.405, 3755.0),
    ("Hamburg", "Hamburg", 20095, 53.551, 9.994, 1892.0),
    ("München", "Bayern", 80331, 48.137, 11.575, 1512.0),
    ("Köln", "Nordrhein-Westfalen", 50667, 50.938, 6.960, 1084.0),
    ("Frankfurt am Main", "Hessen", 60311, 50.110, 8.682, 773.0),
    ("Stuttgart", "Baden-Württemberg", 70173, 48.776, 9.183, 633.0),
    ("Düsseldorf", "Nordrhein-Westfalen", 40213, 51.227, 6.773, 629.0),
    ("Leipzig", "Sachsen", 4109, 51.340, 12.375, 616.0),
    ("Dortmund", "Nordrhein-Westfalen", 44135, 51.514, 7.468, 595.0),
    ("Essen", "Nordrhein-Westfalen", 45127, 51.456, 7.012, 584.0),
    ("Bremen", "Bremen", 28195, 53.079, 8.802, 577.0),
    ("Dresden", "Sachsen", 1067, 51.050, 13.737, 566.0),
    ("Hannover", "Niedersachsen", 30159, 52.376, 9.732, 545.0),
    ("Nürnberg", "Bayern", 90402, 49.452, 11.077, 523.0),
    ("Duisburg", "Nordrhein-Westfalen", 47051, 51.435, 6.762, 503.0),
    ("Bochum", "Nordrhein-Westfalen", 44787, 51.482, 7.216, 365.0),
    ("Wuppertal", "Nordrhein-Westfalen", 42103, 51.256, 7.151, 358.0),
    ("Bielefeld", "Nordrhein-Westfalen", 33602, 52.021, 8.532, 334.0),
    ("Bonn", "Nordrhein-Westfalen", 53111, 50.737, 7.098, 331.0),
    ("Münster", "Nordrhein-Westfalen", 48143, 51.960, 7.626, 320.0),
    ("Mannheim", "Baden-Württemberg", 68159, 49.487, 8.466, 315.0),
    ("Karlsruhe", "Baden-Württemberg", 76133, 49.007, 8.404, 308.0),
    ("Augsburg", "Bayern", 86150, 48.371, 10.898, 301.0),
    ("Wiesbaden", "Hessen", 65183, 50.078, 8.240, 283.0),
    ("Mönchengladbach", "Nordrhein-Westfalen", 41061, 51.185, 6.442, 268.0),
    ("Kiel", "Schleswig-Holstein", 24103, 54.323, 10.123, 247.0),
    ("Magdeburg", "Sachsen-Anhalt", 39104, 52.121, 11.628, 241.0),
    ("Freiburg im Breisgau", "Baden-Württemberg", 79098, 47.999, 7.842, 237.0),
    ("Rostock", "Mecklenburg-Vorpommern", 18055, 54.092, 12.099, 209.0),
    ("Mainz", "Rheinland-Pfalz", 55116, 49.993, 8.247, 220.0),
    ("Erfurt", "Thüringen", 99084, 50.978, 11.029, 214.0),
    ("Saarbrücken", "Saarland", 66111, 49.234, 6.997, 181.0),
    ("Potsdam", "Brandenburg", 14467, 52.391, 13.064, 185.0),
    ("Schwerin", "Mecklenburg-Vorpommern", 19053, 53.635, 11.401, 98.0),
    ("Regensburg", "Bayern", 93047, 49.013, 12.102, 157.0),
    ("Göttingen", "Niedersachsen", 37073, 51.541, 9.916, 118.0),
    // Smaller towns and rural districts stand for the ~60 % who live outside big cities.
    ("Landkreis Rostock (Güstrow)", "Mecklenburg-Vorpommern", 18273, 53.794, 12.176, 420.0),
    ("Landkreis Emsland (Meppen)", "Niedersachsen", 49716, 52.693, 7.291, 1300.0),
    ("Oberallgäu (Sonthofen)", "Bayern", 87527, 47.515, 10.281, 2400.0),
    ("Schwarzwald-Baar (Villingen)", "Baden-Württemberg", 78050, 48.062, 8.493, 2600.0),
    ("Sauerland (Arnsberg)", "Nordrhein-Westfalen", 59755, 51.396, 8.064, 3600.0),
    ("Vogelsberg (Lauterbach)", "Hessen", 36341, 50.637, 9.396, 1500.0),
    ("Erzgebirge (Annaberg)", "Sachsen", 9456, 50.580, 13.004, 1300.0),
    ("Altmark (Stendal)", "Sachsen-Anhalt", 39576, 52.606, 11.858, 1000.0),
    ("Uckermark (Prenzlau)", "Brandenburg", 17291, 53.316, 13.863, 1300.0),
    ("Eifel (Bitburg)", "Rheinland-Pfalz", 54634, 49.967, 6.525, 1600.0),
    ("Thüringer Wald (Suhl)", "Thüringen", 98527, 50.609, 10.693, 1000.0),
    ("Dithmarschen (Heide)", "Schleswig-Holstein", 25746, 54.196, 9.093, 1100.0),
    ("Oberpfalz (Weiden)", "Bayern", 92637, 49.677, 12.156, 2400.0),
    ("Ostfriesland (Aurich)", "Niedersachsen", 26603, 53.471, 7.483, 1500.0),
];

/// Folds a place name for comparison: lower case, umlauts and ß spelled out.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c => out.push(c),
        }
    }
    out
}

/// The place a search names: a city by name (`Köln`, `koeln`, `Frankfurt`) or a five-digit
/// postcode, which resolves to the city whose central postcode shares the longest prefix
/// with it (at least the two digits of its postal region). `None` when nothing matches.
pub fn find_place(query: &str) -> Option<&'static City> {
    let q = query.trim();
    if q.len() == 5 && q.bytes().all(|b| b.is_ascii_digit()) {
        let common = |c: &City| format!("{:05}", c.postcode).bytes().zip(q.bytes()).take_while(|(a, b)| a == b).count();
        let best = CITIES
            .iter()
            .max_by_key(|c| (common(c), std::cmp::Reverse(c.postcode.abs_diff(q.parse().unwrap_or(0)))))?;
        return (common(best) >= 2).then_some(best);
    }
    let f = fold(q);
    if f.is_empty() {
        return None;
    }
    CITIES.iter().find(|c| fold(c.name) == f).or_else(|| CITIES.iter().find(|c| fold(c.name).starts_with(&f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_by_name_and_postcode() {
        assert_eq!(find_place("Köln").map(|c| c.name), Some("Köln"));
        assert_eq!(find_place("koeln").map(|c| c.name), Some("Köln"));
        assert_eq!(find_place("frankfurt").map(|c| c.name), Some("Frankfurt am Main"));
        assert_eq!(find_place("10115").map(|c| c.name), Some("Berlin"));
        // 50667 is Köln's centre; 50939 (Köln-Sülz) shares "50".
        assert_eq!(find_place("50939").map(|c| c.name), Some("Köln"));
        assert!(find_place("Atlantis").is_none());
        assert!(find_place("").is_none());
        assert!(find_place("1234").is_none());
    }
}
