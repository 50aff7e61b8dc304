//! `carelens availability samples` and `import`: own schedules plus both feed shapes merged;
//! a broken feed keeps its last good openings.

use serde_json::json;

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
    // Feeds over HTTP: fetched like a file; a server error is reported like a broken file.
    let url = serve_files(vec![("/doctolib.json", std::fs::read(&doctolib).unwrap())]);
    let fetched_args = args(std::path::Path::new(&format!("{url}/doctolib.json")));
    let fetched = c.json(&fetched_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fetched["feeds"][0]["imported"], true, "{fetched}");
    assert_eq!(fetched["feeds"][0]["listings"], first["feeds"][0]["listings"], "{fetched}");
    assert_eq!(fetched["duplicates"], first["duplicates"]);
    let down_args = args(std::path::Path::new(&format!("{url}/gone.json")));
    let down = c.json(&down_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(down["feeds"][0]["imported"], false, "{down}");
    assert!(down["feeds"][0]["error"].as_str().unwrap().contains("HTTP 404"), "{down}");
    assert_eq!(down["duplicates"], first["duplicates"], "the last good Doctolib listings stay");
    // Text output names what happened.
    let text = c.ok(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("bookable openings") && text.contains("skipped agendas["), "{text}");
    // Bad arguments.
    let err = c.fails(&["availability", "import", "--horizon-days", "0"], 1);
    assert!(err.contains("--horizon-days"), "{err}");
}

/// The SMTP sink (`smtp_sink.py`, aiosmtpd) on a free port; stopped on drop.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
}

impl SmtpSink {
    fn start(python: &std::ffi::OsStr, port: u16, out: &std::path::Path) -> SmtpSink {
        use std::io::BufRead;
        let script = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("e2e/smtp_sink.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
        SmtpSink { child, port, out: out.to_owned() }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far for `to`, in order.
    fn messages_to(&self, to: &str) -> Vec<serde_json::Value> {
        self.messages().into_iter().filter(|m| m["envelope_to"] == json!([to])).collect()
    }

    /// Every message received so far, in order.
    fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<_> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if self.child.wait_timeout_secs(5).is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_secs(&mut self, secs: u64) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for std::process::Child {
    fn wait_timeout_secs(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn booking_messages_reach_a_real_smtp_server_once_with_a_valid_calendar_file() {
    use crate::serve::{Http, Server};
    use chrono::{DateTime, Duration, Utc};
    let Some(python) = std::env::var_os("CARELENS_MAIL_PYTHON") else {
        assert!(
            std::env::var_os("CARELENS_REQUIRE_SERVERS").is_none(),
            "CARELENS_MAIL_PYTHON must name a Python with aiosmtpd and icalendar (cargo xtask test sets it)"
        );
        eprintln!("SKIPPED: SMTP delivery (set CARELENS_MAIL_PYTHON; cargo xtask test does)");
        return;
    };
    let c = Carelens::new();
    c.ok(&["generate", "--patients", "200", "--seed", "3"]);
    c.ok(&["availability", "import", "--horizon-days", "30"]);
    let patient = c.json(&["patients", "--limit", "1"])[0]["id"].as_str().unwrap().to_owned();
    let out = c
        .command()
        .args([
            "users",
            "add",
            "pat.mail",
            "--role",
            "patient",
            "--patient",
            &patient,
            "--email",
            "pat.mail@example.org",
        ])
        .env("CARELENS_NEW_PASSWORD", "a-long-test-password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&c, c.dir.path().join("models").to_str().unwrap());
    let http = Http::new(&server.url);
    let token = http.login("pat.mail", "a-long-test-password");

    // An opening three or more days ahead, so both reminders are still to come.
    let from = Utc::now() + Duration::days(3);
    let hits = http.get("/api/v1/providers/search?per_page=5", &token).body;
    let provider = hits["hits"][0]["id"].as_str().unwrap().to_owned();
    let window = format!("/api/v1/providers/{provider}/openings?from={}", rfc3339(from).replace(':', "%3A"));
    let openings = http.get(&window, &token).body;
    let pick = |i: usize| openings[i]["start"].as_str().unwrap().to_owned();
    let start: DateTime<Utc> = pick(0).parse().unwrap();
    let booked =
        http.post_keyed("/api/v1/appointments", &token, "mail-1", json!({"provider": provider, "start": pick(0)}));
    assert_eq!(booked.status, 201, "{}", booked.body);
    assert_eq!(booked.body["notifications"], json!(["confirmation", "reminder_24h", "reminder_2h"]));
    let id = booked.body["id"].as_str().unwrap().to_owned();

    let sink = SmtpSink::start(&python, crate::free_port(), &c.dir.path().join("sink"));
    let send = |now: Option<DateTime<Utc>>| {
        let mut args = vec!["notify".to_owned(), "send".into(), "--mail".into(), sink.url()];
        if let Some(t) = now {
            args.extend(["--now".into(), rfc3339(t)]);
        }
        c.json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Now: the confirmation. A day before: the 24 h reminder. 90 minutes before: the 2 h one.
    assert_eq!(send(None)["sent"], 1);
    assert_eq!(send(Some(start - Duration::hours(23)))["sent"], 1);
    assert_eq!(send(Some(start - Duration::minutes(90)))["sent"], 1);
    // Exactly once: later rounds send nothing more.
    assert_eq!(send(Some(start - Duration::minutes(80)))["sent"], 0);
    let got = sink.messages_to("pat.mail@example.org");
    assert_eq!(got.len(), 3, "{got:#?}");
    let subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert!(subjects[0].starts_with("Appointment confirmed"), "{subjects:?}");
    assert!(subjects[1].starts_with("Reminder: appointment tomorrow"), "{subjects:?}");
    assert!(subjects[2].starts_with("Reminder: appointment today"), "{subjects:?}");
    let mut ids: Vec<&str> = got.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for m in &got {
        assert_eq!(m["envelope_to"], json!(["pat.mail@example.org"]));
        assert!(m["ics_error"].is_null(), "{m}");
        let ics = &m["ics"];
        assert_eq!(ics["uid"], format!("{id}@carelens"), "{m}");
        assert_eq!(ics["version"], "2.0");
        assert_eq!(ics["method"], "PUBLISH");
        let dtstart: DateTime<Utc> = ics["dtstart"].as_str().unwrap().parse().unwrap();
        assert_eq!(dtstart, start, "{m}");
        // Nothing about the patient beyond the address it goes to.
        let all = m.to_string();
        assert!(!all.contains(&patient), "the Health ID leaked into a message: {m}");
    }

    // The mail server is down: the next booking's confirmation waits and is retried after the
    // backoff, then arrives once.
    drop(sink);
    let second =
        http.post_keyed("/api/v1/appointments", &token, "mail-2", json!({"provider": provider, "start": pick(1)}));
    assert_eq!(second.status, 201, "{}", second.body);
    let down = c.json(&["notify", "send", "--mail", &format!("smtp://127.0.0.1:{}", crate::free_port())]);
    assert_eq!((down["sent"].as_u64(), down["retried"].as_u64()), (Some(0), Some(1)), "{down}");
    let sink = SmtpSink::start(&python, crate::free_port(), &c.dir.path().join("sink"));
    let send = |now: DateTime<Utc>| c.json(&["notify", "send", "--mail", &sink.url(), "--now", &rfc3339(now)]);
    assert_eq!(send(Utc::now())["sent"], 0, "not before the backoff ends");
    assert_eq!(send(Utc::now() + Duration::minutes(2))["sent"], 1);
    assert_eq!(sink.messages_to("pat.mail@example.org").len(), 4);

    // Cancelling announces itself with a METHOD:CANCEL calendar file; its reminders never go.
    let second_id = second.body["id"].as_str().unwrap();
    let r = http.call(
        reqwest::Method::POST,
        &format!("/api/v1/appointments/{second_id}/status"),
        Some(&token),
        Some(json!({"status": "cancelled"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let after = send(Utc::now() + Duration::minutes(3));
    assert_eq!(after["sent"], 1, "{after}");
    let last = sink.messages_to("pat.mail@example.org").pop().unwrap();
    assert!(last["subject"].as_str().unwrap().starts_with("Appointment cancelled"), "{last}");
    assert_eq!(last["ics"]["method"], "CANCEL");
    assert_eq!(last["ics"]["status"], "CANCELLED");
    let start2: DateTime<Utc> = pick(1).parse().unwrap();
    assert_eq!(send(start2 - Duration::minutes(90))["sent"], 0, "a cancelled appointment's reminders never go");
    let status = c.json(&["notify", "status"]);
    assert_eq!(status["sent"], 5, "{status}");
    assert_eq!(sink.messages().len(), 5);
    drop(server);
}

/// A minimal HTTP/1.1 file server on a free loopback port for the rest of the test process:
/// `GET path` answers the bytes listed for it, anything else 404.
fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
            let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, b)) => ("200 OK", b.clone()),
                None => ("404 Not Found", b"not here".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).ok();
            stream.write_all(&body).ok();
        }
    });
    url
}
