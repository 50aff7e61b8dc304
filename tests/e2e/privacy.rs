use crate::Carelens;

/// With debug logging on, nothing on stderr names a patient or a birth date.
#[test]
fn logs_never_carry_names_or_birth_dates() {
    let c = Carelens::new();
    let out = c.command().args(["-vv", "generate", "--patients", "300"]).output().unwrap();
    assert!(out.status.success());
    let stats = c.command().args(["-vv", "stats"]).output().unwrap();
    let stderr = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&stats.stderr));
    assert!(stderr.contains("DEBUG") || stderr.contains("INFO"), "debug logging was on: {stderr}");
    let conn = rusqlite::Connection::open(c.data_dir().join("carelens.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT json_extract(body, '$.name.family'), json_extract(body, '$.birth_date') FROM patients")
        .unwrap();
    let rows: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 300);
    for (family, birth) in rows {
        assert!(!stderr.contains(&family), "a family name reached the logs");
        assert!(!stderr.contains(&birth), "a birth date reached the logs");
    }
}
