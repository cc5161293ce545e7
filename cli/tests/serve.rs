//! `palisade serve` as a process: it stops on SIGTERM after finishing the requests
//! in flight, and `palisade log verify` checks the decision log it writes.
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
