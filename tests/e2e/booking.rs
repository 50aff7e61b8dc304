//! `carelens availability samples` and `import`: own schedules plus both feed shapes merged;
//! a broken feed keeps its last good openings.

use crate::Carelens;

const NOW: &str = "2026-12-01T00:00:00Z";

#[test]
fn availability_from_own_schedules_and_two_feeds_merges_and_survives_a_broken_feed() {
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "300", "--seed", "5"]);
    let feeds = c.dir.path().join("feeds");
    let written = c.json(&["availability", "samples", "--out", feeds.to_str().unwrap(), "--now", NOW]);
    assert_eq!(written.as_array().unwrap().len(), 2);
    let (doctolib, jameda) = (feeds.join("doctolib.json"), feeds.join("jameda.json"));

    // Own schedules only.
    let own = c.json(&["availability", "import", "--now", NOW, "--horizon-days", "30"]);
    let own_openings = own["openings"].as_u64().unwrap();
    assert!(own_openings > 1000, "{own}");
    assert_eq!(own["own_listings"].as_u64().unwrap(), own_openings);
    assert_eq!(own["duplicates"], 0);

    // Both feeds: the same slots folded into the own openings, their bad entries named.
    let args = |d: &std::path::Path| {
        vec![
            "availability".to_owned(),
            "import".into(),
            "--now".into(),
            NOW.into(),
            "--horizon-days".into(),
            "30".into(),
            "--doctolib".into(),
            d.to_str().unwrap().into(),
            "--jameda".into(),
            jameda.to_str().unwrap().into(),
        ]
    };
    let first_args = args(&doctolib);
    let first = c.json(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    let feeds_report = first["feeds"].as_array().unwrap();
    assert_eq!(feeds_report.len(), 2);
    for f in feeds_report {
        assert_eq!(f["imported"], true, "{f}");
        assert!(f["listings"].as_u64().unwrap() > 10, "{f}");
        assert_eq!(f["problem_count"], 1, "{f}");
    }
    assert!(feeds_report[0]["problems"][0].as_str().unwrap().starts_with("agendas["), "{first}");
    assert!(feeds_report[0]["problems"][0].as_str().unwrap().contains("start_date"), "{first}");
    assert!(feeds_report[1]["problems"][0].as_str().unwrap().contains("terminart"), "{first}");
    assert_eq!(feeds_report[0]["unmatched_practitioners"].as_array().unwrap().len(), 1);
    let listed = feeds_report[0]["listings"].as_u64().unwrap() + feeds_report[1]["listings"].as_u64().unwrap();
    assert_eq!(first["openings"].as_u64().unwrap(), own_openings, "feeds list the providers' own slots");
    assert_eq!(first["duplicates"].as_u64().unwrap(), listed);

    // A broken Doctolib feed: reported, and its last good listings still count.
    let broken = c.dir.path().join("broken.json");
    std::fs::write(&broken, b"{\"agendas\": [ {").unwrap();
    let again_args = args(&broken);
    let again = c.json(&again_args.iter().map(String::as_str).collect::<Vec<_>>());
    let d = &again["feeds"][0];
    assert_eq!(d["imported"], false, "{again}");
    assert!(d["error"].as_str().unwrap().contains("not JSON"), "{again}");
    assert_eq!(again["duplicates"], first["duplicates"], "the last good Doctolib listings stay");
    // A feed file that is missing is reported the same way, not a crash.
    let missing_args = args(&c.dir.path().join("nope.json"));
    let missing = c.json(&missing_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(missing["feeds"][0]["imported"], false);
    assert_eq!(missing["duplicates"], first["duplicates"]);
    // Text output names what happened.
    let text = c.ok(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("bookable openings") && text.contains("skipped agendas["), "{text}");
    // Bad arguments.
    let err = c.fails(&["availability", "import", "--horizon-days", "0"], 1);
    assert!(err.contains("--horizon-days"), "{err}");
}
