//! Reference tables for Germany. Populations and shares are rounded public figures
//! (Destatis 2022 age structure, city populations); good enough for realistic synthetic data.

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
    (
        "Stuttgart",
        "Baden-Württemberg",
        70173,
        48.776,
        9.183,
        633.0
    ),
    (
        "Düsseldorf",
        "Nordrhein-Westfalen",
        40213,
        51.227,
        6.773,
        629.0
    ),
    ("Leipzig", "Sachsen", 4109, 51.340, 12.375, 616.0),
    (
        "Dortmund",
        "Nordrhein-Westfalen",
        44135,
        51.514,
        7.468,
        595.0
    ),
    ("Essen", "Nordrhein-Westfalen", 45127, 51.456, 7.012, 584.0),
    ("Bremen", "Bremen", 28195, 53.079, 8.802, 577.0),
    ("Dresden", "Sachsen", 1067, 51.050, 13.737, 566.0),
    ("Hannover", "Niedersachsen", 30159, 52.376, 9.732, 545.0),
    ("Nürnberg", "Bayern", 90402, 49.452, 11.077, 523.0),
    (
        "Duisburg",
        "Nordrhein-Westfalen",
        47051,
        51.435,
        6.762,
        503.0
    ),
    ("Bochum", "Nordrhein-Westfalen", 44787, 51.482, 7.216, 365.0),
    (
        "Wuppertal",
        "Nordrhein-Westfalen",
        42103,
        51.256,
        7.151,
        358.0
    ),
    (
        "Bielefeld",
        "Nordrhein-Westfalen",
        33602,
        52.021,
        8.532,
        334.0
    ),
    ("Bonn", "Nordrhein-Westfalen", 53111, 50.737, 7.098, 331.0),
    (
        "Münster",
        "Nordrhein-Westfalen",
        48143,
        51.960,
        7.626,
        320.0
    ),
    ("Mannheim", "Baden-Württemberg", 68159, 49.487, 8.466, 315.0),
    (
        "Karlsruhe",
        "Baden-Württemberg",
        76133,
        49.007,
        8.404,
        308.0
    ),
    ("Augsburg", "Bayern", 86150, 48.371, 10.898, 301.0),
    ("Wiesbaden", "Hessen", 65183, 50.078, 8.240, 283.0),
    (
        "Mönchengladbach",
        "Nordrhein-Westfalen",
        41061,
        51.185,
        6.442,
        268.0
    ),
    ("Kiel", "Schleswig-Holstein", 24103, 54.323, 10.123, 247.0),
    ("Magdeburg", "Sachsen-Anhalt", 39104, 52.121, 11.628, 241.0),
    (
        "Freiburg im Breisgau",
        "Baden-Württemberg",
        79098,
        47.999,
        7.842,
        237.0
    ),
    (
        "Rostock",
        "Mecklenburg-Vorpommern",
        18055,
        54.092,
        12.099,
        209.0
    ),
    ("Mainz", "Rheinland-Pfalz", 55116, 49.993, 8.247, 220.0),
    ("Erfurt", "Thüringen", 99084, 50.978, 11.029, 214.0),
    ("Saarbrücken", "Saarland", 66111, 49.234, 6.997, 181.0),
    ("Potsdam", "Brandenburg", 14467, 52.391, 13.064, 185.0),
    (
        "Schwerin",
        "Mecklenburg-Vorpommern",
        19053,
        53.635,
        11.401,
        98.0
    ),
    ("Regensburg", "Bayern", 93047, 49.013, 12.102, 157.0),
    ("Göttingen", "Niedersachsen", 37073, 51.541, 9.916, 118.0),
    // Smaller towns and rural districts stand for the ~60 % who live outside big cities.
    (
        "Landkreis Rostock (Güstrow)",
        "Mecklenburg-Vorpommern",
        18273,
        53.794,
        12.176,
        420.0
    ),
    (
        "Landkreis Emsland (Meppen)",
        "Niedersachsen",
        49716,
        52.693,
        7.291,
        1300.0
    ),
    (
        "Oberallgäu (Sonthofen)",
        "Bayern",
        87527,
        47.515,
        10.281,
        2400.0
    ),
    (
        "Schwarzwald-Baar (Villingen)",
        "Baden-Württemberg",
        78050,
        48.062,
        8.493,
        2600.0
    ),
    (
        "Sauerland (Arnsberg)",
        "Nordrhein-Westfalen",
        59755,
        51.396,
        8.064,
        3600.0
    ),
    (
        "Vogelsberg (Lauterbach)",
        "Hessen",
        36341,
        50.637,
        9.396,
        1500.0
    ),
    (
        "Erzgebirge (Annaberg)",
        "Sachsen",
        9456,
        50.580,
        13.004,
        1300.0
    ),
    (
        "Altmark (Stendal)",
        "Sachsen-Anhalt",
        39576,
        52.606,
        11.858,
        1000.0
    ),
    (
        "Uckermark (Prenzlau)",
        "Brandenburg",
        17291,
        53.316,
        13.863,
        1300.0
    ),
    (
        "Eifel (Bitburg)",
        "Rheinland-Pfalz",
        54634,
        49.967,
        6.525,
        1600.0
    ),
    (
        "Thüringer Wald (Suhl)",
        "Thüringen",
        98527,
        50.609,
        10.693,
        1000.0
    ),
    (
        "Dithmarschen (Heide)",
        "Schleswig-Holstein",
        25746,
        54.196,
        9.093,
        1100.0
    ),
    (
        "Oberpfalz (Weiden)",
        "Bayern",
        92637,
        49.677,
        12.156,
        2400.0
    ),
    (
        "Ostfriesland (Aurich)",
        "Niedersachsen",
        26603,
        53.471,
        7.483,
        1500.0
    ),
];

/// Population by 5-year age band 0–4 … 95–99, thousands (Destatis 2022, rounded).
pub const AGE_BANDS_K: [f64; 20] = [
    3950.0, 3900.0, 3800.0, 3900.0, 4400.0, 4900.0, 5500.0, 5400.0, 5100.0, 4900.0, 6200.0, 6800.0,
    6000.0, 5100.0, 4100.0, 3500.0, 3300.0, 1700.0, 700.0, 150.0,
];

/// Share of women by age band: even until 60, then rising with female life expectancy.
pub fn female_share(age: u32) -> f64 {
    match age {
        0..=59 => 0.49,
        60..=79 => 0.53,
        80..=89 => 0.61,
        _ => 0.73,
    }
}

/// Statutory insurers (name, 9-digit IK) and their market share weight.
pub const STATUTORY_INSURERS: &[(&str, &str, f64)] = &[
    ("Techniker Krankenkasse", "101575519", 11.0),
    ("BARMER", "104940005", 8.7),
    ("DAK-Gesundheit", "105830016", 5.5),
    ("AOK Bayern", "108310400", 4.6),
    ("AOK PLUS", "107299005", 3.5),
    ("AOK Baden-Württemberg", "108018007", 4.5),
    ("AOK Nordwest", "103411401", 3.0),
    ("AOK Niedersachsen", "102114819", 3.0),
    ("IKK classic", "107202793", 3.0),
    ("KKH", "102171012", 1.6),
    ("hkk", "103170002", 1.1),
    ("BKK (various)", "108433248", 5.0),
];

pub const PRIVATE_INSURERS: &[(&str, &str, f64)] = &[
    ("Debeka", "168141347", 2.5),
    ("Allianz Private", "168140950", 0.8),
    ("AXA", "168140346", 0.8),
    ("DKV", "168141564", 0.8),
    ("Signal Iduna", "168140427", 0.6),
    ("HUK-COBURG", "168141085", 0.4),
];

pub const FEMALE_NAMES: &[&str] = &[
    "Maria",
    "Ursula",
    "Monika",
    "Petra",
    "Sabine",
    "Claudia",
    "Susanne",
    "Andrea",
    "Birgit",
    "Julia",
    "Anna",
    "Katharina",
    "Laura",
    "Lena",
    "Sophie",
    "Emma",
    "Mia",
    "Hannah",
    "Lea",
    "Elif",
    "Ayşe",
    "Fatma",
    "Zeynep",
    "Agnieszka",
    "Olga",
    "Natalia",
    "Leonie",
    "Marie",
    "Johanna",
    "Helga",
    "Ingrid",
    "Renate",
    "Gisela",
    "Nora",
];

pub const MALE_NAMES: &[&str] = &[
    "Peter",
    "Michael",
    "Thomas",
    "Andreas",
    "Wolfgang",
    "Klaus",
    "Jürgen",
    "Stefan",
    "Frank",
    "Markus",
    "Jan",
    "Lukas",
    "Leon",
    "Finn",
    "Paul",
    "Jonas",
    "Ben",
    "Elias",
    "Noah",
    "Mehmet",
    "Mustafa",
    "Ali",
    "Ahmet",
    "Piotr",
    "Dmitri",
    "Sergej",
    "Hans",
    "Günter",
    "Dieter",
    "Karl",
    "Felix",
    "Maximilian",
    "Tim",
    "Omar",
];

pub const FAMILY_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Ivanov",
    "Popescu",
    "Nguyen",
];

pub const STREETS: &[&str] = &[
    "Hauptstraße",
    "Bahnhofstraße",
    "Schulstraße",
    "Gartenstraße",
    "Dorfstraße",
    "Bergstraße",
    "Lindenstraße",
    "Kirchstraße",
    "Marktplatz",
    "Goethestraße",
    "Schillerstraße",
    "Friedrichstraße",
    "Am Klinikum",
];

pub const REVIEW_TEXTS: [&[&str]; 5] = [
    &[
        "Lange Wartezeit, kaum Zeit für Fragen.",
        "Unfreundlich am Empfang.",
        "Termin wurde zweimal verschoben.",
    ],
    &[
        "Sehr kurz angebunden.",
        "Wartezeit trotz Termin über eine Stunde.",
        "Diagnose nicht gut erklärt.",
    ],
    &[
        "In Ordnung, aber volles Wartezimmer.",
        "Kompetent, aber wenig Zeit.",
        "Solide Behandlung.",
    ],
    &[
        "Freundliches Team, kurze Wartezeit.",
        "Hat sich Zeit genommen.",
        "Gute Beratung, gerne wieder.",
    ],
    &[
        "Hervorragende Ärztin, sehr empfehlenswert!",
        "Top Praxis, alles bestens erklärt.",
        "Sehr einfühlsam und kompetent.",
    ],
];
