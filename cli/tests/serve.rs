//! `palisade serve` as a process: it stops on SIGTERM after finishing the requests
//! in flight, `palisade log verify` checks the decision log it writes, and that log
//! stays verifiable through a full disk and a `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::time::Duration;

use common::{code, palisade, text};
use tls::{Ca, connect, review, wait_ready};

#[test]
fn sigterm_finishes_requests_in_flight() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    ca.issue(&cert, &key, "serving");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = common::command()
        .args([
            "serve",
            "-b",
            "tests/fixtures/bad-bundles/slow",
            "--rego-timeout",
            "800",
            "--evaluation-deadline-ms",
            "10000",
        ])
        .args(["--addr", &format!("127.0.0.1:{port}"), "--log-format", "text"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = ca.client();
    runtime.block_on(async {
        wait_ready(&client, addr, Duration::from_secs(30)).await;
        let mut c = connect(&client, addr).await.unwrap();
        // This evaluation takes about 1.6 s (two rules stopped by their 800 ms budget).
        let in_flight = tokio::spawn(async move { c.review(&review("in-flight", "nginx:1")).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let r = in_flight.await.unwrap();
        assert_eq!(r["response"]["uid"], "in-flight");
        assert_eq!(r["response"]["allowed"], false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(connect(&client, addr).await.is_err(), "new connections must be refused after SIGTERM");
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn log_verify_reports_ok_or_the_first_altered_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let mut writer = palisade::decision_log::Writer::open(&log, 1 << 20, 3).unwrap();
    for uid in ["a", "b", "c"] {
        let record = serde_json::from_value(serde_json::json!({"time": "2026-12-06T00:00:00Z", "uid": uid,
            "user": "alice", "operation": "CREATE", "object": "Pod/shop/web", "bundles": [], "policies": [],
            "result": "denied", "denied_by": ["p"], "warned_by": [], "skipped": [], "latency_us": 1}))
        .unwrap();
        writer.append(record).unwrap();
    }
    drop(writer);
    let path = log.to_str().unwrap();
    let o = palisade(&["log", "verify", path]);
    assert_eq!((code(&o), text(&o.stdout).as_str()), (0, "OK: 3 entries verified\n"));
    let content = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, content.replacen("\"result\":\"denied\"", "\"result\":\"allowed\"", 2)).unwrap();
    let o = palisade(&["log", "verify", path]);
    assert_eq!(code(&o), 1);
    assert_eq!(text(&o.stdout), format!("{path}:1: altered: the line's content does not match its hash\n"));
}

/// A `palisade serve` process, killed when dropped (a failed test leaves none behind).
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `palisade serve` of the basic bundle on a free port with its decision log in `dir`,
/// under `wrapper` (e.g. `prlimit --fsize=N`) when given; stderr (at `level`) goes to
/// `dir/stderr`.
fn serve_with_log(dir: &std::path::Path, ca: &Ca, wrapper: &[&str], level: &str) -> (Serving, std::net::SocketAddr) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    if !cert.exists() {
        ca.issue(&cert, &key, "serving");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(common::BIN).current_dir(common::engine_dir());
            c
        }
        None => common::command(),
    };
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stderr")).unwrap();
    let child = cmd
        .args(["serve", "-b", "tests/bundles/basic", "--log-format", "text", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--decision-log")
        .arg(dir.join("decisions.jsonl"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("PALISADE_LOG", level)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    (Serving(child), format!("127.0.0.1:{port}").parse().unwrap())
}

/// Sends `n` reviews of a `nginx:latest` Pod (denied by the basic bundle); every one
/// must be answered with its decision.
async fn send_reviews(
    client: &std::sync::Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    from: usize,
    n: usize,
) {
    let mut c = connect(client, addr).await.unwrap();
    for i in from..from + n {
        let r = c.review(&review(&format!("uid-{i}"), "nginx:latest")).await;
        assert_eq!(
            (r["response"]["uid"].as_str(), r["response"]["allowed"].as_bool()),
            (Some(&*format!("uid-{i}")), Some(false)),
            "{r}"
        );
    }
}

/// The sum of the samples of `name` in the server's /metrics.
async fn metric(client: &std::sync::Arc<rustls::ClientConfig>, addr: std::net::SocketAddr, name: &str) -> f64 {
    let (_, text) = connect(client, addr).await.unwrap().request("GET", "/metrics", Vec::new()).await;
    tls::metric_sum(&text, name)
}

fn stop(serving: &mut Serving) {
    let pid = serving.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(serving.0.wait().unwrap().success());
}

/// Decision entries, gap entries and the decisions the gap entries say are missing.
fn decisions_and_gaps(log: &std::path::Path) -> (usize, usize, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let entries: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let gaps: Vec<_> = entries.iter().filter(|e| e["result"] == "gap").collect();
    (entries.len() - gaps.len(), gaps.len(), gaps.iter().filter_map(|g| g["lost"].as_u64()).sum())
}

#[test]
fn a_full_disk_keeps_serving_and_the_log_records_the_gap() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    // A file-size limit stands in for a full disk: writes past 8 KiB fail (EFBIG), to
    // the decision log and to stderr (a file here, filled by the info log) alike.
    let (mut child, addr) = serve_with_log(dir.path(), &ca, &["prlimit", "--fsize=8192:unlimited"], "info");
    let client = ca.client();
    let lost = runtime.block_on(async {
        wait_ready(&client, addr, Duration::from_secs(30)).await;
        // Five at a time, each on a new connection (a full TLS handshake).
        for from in (0..60).step_by(5) {
            send_reviews(&client, addr, from, 5).await;
        }
        // The writer thread works behind the answers: wait until it has taken all 60
        // (written or counted as not written).
        let log = dir.path().join("decisions.jsonl");
        let logged = || decisions_and_gaps(&log).0 as f64;
        let (mut lost, mut unlogged) = (0.0, 0.0);
        for _ in 0..200 {
            lost = metric(&client, addr, "palisade_decision_log_write_errors_total").await;
            unlogged = metric(&client, addr, "palisade_decision_log_unlogged").await;
            if logged() + lost == 60.0 && unlogged > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(logged() + lost, 60.0, "the writer never took every decision");
        assert!(unlogged > 0.0 && unlogged <= lost, "{unlogged} of {lost}");
        assert!(lost > 0.0, "the log never filled up");
        // Space again: the next write records the gap, then the decision.
        let pid = child.0.id().to_string();
        assert!(
            std::process::Command::new("prlimit")
                .args(["--pid", &pid, "--fsize=unlimited"])
                .status()
                .unwrap()
                .success()
        );
        send_reviews(&client, addr, 60, 5).await;
        for _ in 0..200 {
            if metric(&client, addr, "palisade_decision_log_unlogged").await == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(metric(&client, addr, "palisade_decision_log_unlogged").await, 0.0);
        lost
    });
    stop(&mut child);
    let log = dir.path().join("decisions.jsonl");
    let o = palisade(&["log", "verify", log.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    // Every request is either in the log or counted by a gap entry (one, or more when
    // a gap entry fit in the space left and the next record did not).
    let (decisions, gaps, in_gaps) = decisions_and_gaps(&log);
    assert_eq!((decisions + in_gaps as usize, in_gaps as f64), (65, lost));
    let expected = format!("{gaps} gap(s): the writer recorded {lost} decision(s)");
    assert!(text(&o.stdout).contains(&expected), "{}", text(&o.stdout));
    // stderr filled up too (it is capped by the same limit); the recovery is reported.
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(stderr.matches("decision log writable again").count(), 1, "{stderr}");
}

#[test]
fn kill_9_during_writes_then_restart_verifies_and_appends() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let client = ca.client();
    let log = dir.path().join("decisions.jsonl");
    let (mut child, addr) = serve_with_log(dir.path(), &ca, &[], "warn");
    runtime.block_on(async {
        wait_ready(&client, addr, Duration::from_secs(30)).await;
        send_reviews(&client, addr, 0, 10).await;
        // Killed while requests (and so log writes) are in flight.
        let load: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    let Ok(mut c) = connect(&client, addr).await else { return };
                    for i in 0..1000 {
                        let body = review(&format!("t{t}-{i}"), "nginx:latest").to_string().into_bytes();
                        if c.try_request("POST", "/validate", body).await.is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        for t in load {
            t.await.unwrap();
        }
    });
    // A single write(2) to a file is not torn by SIGKILL; a power loss can tear one.
    // Half a line appended by hand stands in for that.
    let whole = std::fs::read_to_string(&log).unwrap();
    let fragment = &whole.lines().next().unwrap()[..60];
    std::fs::write(&log, format!("{whole}{fragment}")).unwrap();
    assert_eq!(code(&palisade(&["log", "verify", log.to_str().unwrap()])), 1);

    let (mut child, addr) = serve_with_log(dir.path(), &ca, &[], "warn");
    runtime.block_on(async {
        wait_ready(&client, addr, Duration::from_secs(30)).await;
        send_reviews(&client, addr, 100, 3).await;
    });
    stop(&mut child);
    let before = whole.lines().count();
    let o = palisade(&["log", "verify", log.to_str().unwrap()]);
    let expected = format!("OK: {} entries verified\n1 gap(s): the writer recorded 1 decision(s)", before + 4);
    assert!(text(&o.stdout).starts_with(&expected), "{}", text(&o.stdout));
    let torn = std::fs::read_to_string(dir.path().join("decisions.jsonl.torn")).unwrap();
    assert_eq!(torn, format!("{fragment}\n"));
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(stderr.contains("ended in an incomplete entry"), "{stderr}");
}
