//! `--exceptions`: one PolicyException judged alike by scan (every output format),
//! eval and serve; expired ones waive nothing; bad ones stop the command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::path::Path;
use std::time::Duration;

use common::{code, palisade, palisade_stdin, text};
use serde_json::Value;
use tls::{Ca, connect, wait_ready};

const BASIC: &str = "tests/bundles/basic";
const POD: &str = "tests/fixtures/manifests/pod.yaml"; // Pod shop/web, nginx:latest
const REVIEW: &str = "tests/fixtures/manifests/admission-review.json"; // Deployment shop/web, nginx:latest

/// `name` waiving no-latest-tag and required-labels for `w*` in namespace shop until `days` from now (negative: expired).
fn write_exception(dir: &Path, name: &str, days: i64) -> String {
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * days)).unwrap();
    let doc = format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: PolicyException\nmetadata: {{name: {name}}}\nspec:\n  \
         policies: [no-latest-tag, basic/required-labels]\n  match: {{namespaces: [shop], names: [\"w*\"]}}\n  \
         justification: upstream publishes only latest until v5\n  risk: an unreviewed image may run\n  \
         compensatingControl: image digest recorded at admission and reviewed weekly\n  \
         approvedBy: [security-lead@example.com]\n  ticket: SEC-42\n  expires: \"{expires}\"\n"
    );
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, doc).unwrap();
    file.display().to_string()
}

fn scan(exceptions: &str, format: &str) -> (i32, String) {
    let o = palisade(&["scan", "-b", BASIC, "--exceptions", exceptions, "-o", format, POD]);
    assert!(code(&o) != 2, "{}", text(&o.stderr));
    (code(&o), text(&o.stdout))
}

#[test]
fn a_waived_finding_is_reported_in_every_format_and_does_not_deny() {
    let dir = tempfile::tempdir().unwrap();
    let ex = write_exception(dir.path(), "shop-latest", 100);
    let (exit, json) = scan(&ex, "json");
    assert_eq!(exit, 0, "{json}");
    let d: Value = serde_json::from_str(&json).unwrap();
    let d = &d["results"][0]["decision"];
    assert_eq!(d["allowed"], true);
    assert_eq!(d["waived"][0]["policy"], "no-latest-tag");
    assert_eq!(d["waived"][0]["exception"]["name"], "shop-latest");
    assert_eq!(d["waived"][0]["exception"]["ticket"], "SEC-42");
    assert!(d["violations"].as_array().unwrap().is_empty());
    // The warning of another policy is not hidden by it.
    assert_eq!(d["warnings"][0]["policy"], "resource-limits");

    let (_, pretty) = scan(&ex, "pretty");
    assert!(pretty.contains("waived no-latest-tag: container web uses image nginx:latest"), "{pretty}");
    assert!(pretty.contains("[exception shop-latest until "), "{pretty}");
    assert!(pretty.contains("1 waived by exceptions"), "{pretty}");
    let (_, sarif) = scan(&ex, "sarif");
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let waived = results.iter().find(|r| r["ruleId"].as_str().unwrap().ends_with("no-latest-tag")).unwrap();
    assert_eq!(waived["suppressions"][0]["kind"], "external");
    assert_eq!(waived["suppressions"][0]["properties"]["exception"], "shop-latest");
    let (_, junit) = scan(&ex, "junit");
    assert!(junit.contains("<skipped message=\"waived by exception shop-latest until "), "{junit}");
    let (_, report) = scan(&ex, "policy-report");
    let report: Value = serde_yaml_ng::from_str(report.trim_start_matches("---\n")).unwrap();
    let r = report["results"].as_array().unwrap().iter().find(|r| r["rule"] == "no-latest-tag").unwrap().clone();
    assert_eq!((r["result"].as_str(), r["properties"]["exception"].as_str()), (Some("skip"), Some("shop-latest")));

    // Outside the scope (another namespace), the same finding still denies.
    let other = std::fs::read_to_string(common::engine_dir().join(POD)).unwrap().replace("shop", "shop2");
    let o = palisade_stdin(&["scan", "-b", BASIC, "--exceptions", &ex, "-"], Some(&other));
    assert_eq!(code(&o), 1, "{}", text(&o.stdout));
}

#[test]
fn an_expired_exception_waives_nothing_and_says_when_it_expired() {
    let dir = tempfile::tempdir().unwrap();
    let ex = write_exception(dir.path(), "old", -1);
    let (exit, pretty) = scan(&ex, "pretty");
    assert_eq!(exit, 1, "{pretty}");
    assert!(pretty.contains("(exception old expired "), "{pretty}");
    // Every other format says so too, and so do eval's denial and the decision log.
    let (_, sarif) = scan(&ex, "sarif");
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let r = results.iter().find(|r| r["ruleId"].as_str().unwrap().ends_with("no-latest-tag")).unwrap();
    assert!(r["message"]["text"].as_str().unwrap().contains("(exception old expired "), "{r}");
    assert_eq!(r["properties"]["expiredException"], "old");
    assert!(r.get("suppressions").is_none(), "{r}");
    let (_, junit) = scan(&ex, "junit");
    assert!(junit.contains("(exception old expired "), "{junit}");
    let (_, report) = scan(&ex, "policy-report");
    let report: Value = serde_yaml_ng::from_str(report.trim_start_matches("---\n")).unwrap();
    let r = report["results"].as_array().unwrap().iter().find(|r| r["rule"] == "no-latest-tag").unwrap().clone();
    assert_eq!((r["result"].as_str(), r["properties"]["expiredException"].as_str()), (Some("fail"), Some("old")));
    let o = palisade(&["eval", "-b", BASIC, "--exceptions", &ex, REVIEW]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let eval: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let message = eval["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("[no-latest-tag]") && message.contains("(exception old expired "), "{message}");
    let (served, metrics, line) = serve_one(dir.path(), &ex);
    assert_eq!(served["response"]["status"]["message"].as_str(), Some(message));
    assert!(metrics.contains("palisade_exceptions_expired 1"), "{metrics}");
    assert!(line.contains("\"expired_exceptions\":[\"no-latest-tag: old (expired "), "{line}");
    // Close to expiry: a warning on stderr, still waived.
    let soon = write_exception(dir.path(), "soon", 3);
    let o = palisade(&["scan", "-b", BASIC, "--exceptions", &soon, POD]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stderr).contains("warning: exception soon expires in 2 days"), "{}", text(&o.stderr));
}

#[test]
fn a_bad_exception_stops_the_command_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_exception(dir.path(), "far", 400);
    let o = palisade(&["scan", "-b", BASIC, "--exceptions", &file, POD]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(err.contains("far.yaml: document 1: `spec.expires`") && err.contains("more than 365 days"), "{err}");
    let o = palisade(&["scan", "-b", BASIC, "--exceptions", &file, "--max-exception-days", "500", POD]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

#[test]
fn eval_and_serve_admit_what_the_exception_waives() {
    let dir = tempfile::tempdir().unwrap();
    let ex = write_exception(dir.path(), "shop-latest", 100);
    let o = palisade(&["eval", "-b", BASIC, "--exceptions", &ex, REVIEW]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let eval: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(eval["response"]["allowed"], true);
    let waived = eval["response"]["auditAnnotations"]["waived"].as_str().unwrap();
    assert_eq!(waived, "no-latest-tag (shop-latest), required-labels (shop-latest)");

    let (served, metrics, line) = serve_one(dir.path(), &ex);
    // The same answer as eval, the exception in the decision log and the metrics.
    assert_eq!(served["response"]["allowed"], eval["response"]["allowed"]);
    assert_eq!(served["response"]["warnings"], eval["response"]["warnings"]);
    assert!(metrics.contains("palisade_exceptions_active 1"), "{metrics}");
    assert!(
        line.contains("\"waived\":[\"no-latest-tag: shop-latest\",\"required-labels: shop-latest\"]")
            && line.contains("\"result\":\"allowed\""),
        "{line}"
    );
}

/// Starts `serve` with `exceptions`, sends REVIEW, and returns the answer, the
/// metrics and the decision log once it has the entry.
fn serve_one(dir: &Path, exceptions: &str) -> (Value, String, String) {
    let ca = Ca::new();
    let (cert, key, log) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("decisions.jsonl"));
    ca.issue(&cert, &key, "serving");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = common::command()
        .args(["serve", "-b", BASIC, "--exceptions", exceptions, "--addr", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--decision-log")
        .arg(&log)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = ca.client();
    let review: Value =
        serde_json::from_str(&std::fs::read_to_string(common::engine_dir().join(REVIEW)).unwrap()).unwrap();
    let (served, metrics) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        wait_ready(&client, addr, Duration::from_secs(30)).await;
        let mut c = connect(&client, addr).await.unwrap();
        (c.review(&review).await, c.request("GET", "/metrics", vec![]).await.1)
    });
    // The log's writer thread works behind the answers: wait for the entry, then stop.
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("\"result\"")
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (served, metrics, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn the_evidence_report_lists_active_and_expired_exceptions_under_their_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let active = write_exception(dir.path(), "shop-latest", 100);
    let expired = write_exception(dir.path(), "old", -10);
    let o = palisade(&["report", "-b", BASIC, "--exceptions", &active, "--exceptions", &expired, POD]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let md = text(&o.stdout);
    // no-latest-tag enforces 6.3.2: its section shows both, with status and what was waived.
    let section = &md[md.find("### 6.3.2").unwrap()..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    assert!(section.contains("| waived | container web uses image nginx:latest"), "{section}");
    let row =
        |name: &str| section.lines().find(|l| l.starts_with(&format!("| `{name}` | `no-latest-tag`"))).unwrap_or("");
    assert!(row("shop-latest").contains("| active, 99 days left | 1 |"), "{section}");
    assert!(row("shop-latest").contains("| security-lead@example.com | SEC-42 |"), "{section}");
    assert!(row("old").contains("| EXPIRED: waives nothing | 0 |"), "{section}");
}

#[test]
fn signed_exceptions_are_required_when_asked_and_altered_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let o = palisade(&["bundle", "keygen", "-o", &format!("{d}/approver")]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let (key, public) = (format!("{d}/approver.key"), format!("{d}/approver.pub"));
    let unsigned = write_exception(dir.path(), "shop-latest", 100);
    let o = palisade(&["exception", "sign", &unsigned, "--key", &key]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let signed = dir.path().join("signed.yaml");
    std::fs::write(&signed, text(&o.stdout)).unwrap();
    let signed = signed.display().to_string();
    let strict = |file: &str| {
        palisade(&[
            "scan",
            "-b",
            BASIC,
            "--exceptions",
            file,
            "--require-signed-exceptions",
            "--exception-key",
            &public,
            POD,
        ])
    };

    assert_eq!(code(&strict(&signed)), 0);
    let o = palisade(&["exception", "verify", &signed, "--trusted-key", &public]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).starts_with("OK: shop-latest"), "{}", text(&o.stdout));
    // Unsigned: refused under --require-signed-exceptions, accepted without.
    let o = strict(&unsigned);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("`metadata.annotations.palisade.dev/signature`: unsigned"), "{}", text(&o.stderr));
    // Widened after signing (another namespace): the signature no longer verifies.
    let altered = dir.path().join("altered.yaml");
    std::fs::write(&altered, std::fs::read_to_string(&signed).unwrap().replace("- shop", "- payments")).unwrap();
    let altered = altered.display().to_string();
    let o = strict(&altered);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("the exception was altered after it was signed"), "{}", text(&o.stderr));
    let o = palisade(&["exception", "verify", &altered, "--trusted-key", &public]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).starts_with("FAILED: shop-latest"), "{}", text(&o.stdout));
}

#[test]
fn test_applies_exceptions_to_every_case_and_counts_what_they_waive() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("basic");
    common::copy_dir(&common::engine_dir().join(BASIC), &bundle);
    std::fs::write(
        bundle.join("tests/waived.yaml"),
        "policy: no-latest-tag\ncases:\n  - name: latest in shop is waived\n    object:\n      apiVersion: v1\n      \
         kind: Pod\n      metadata: {name: web, namespace: shop}\n      spec:\n        containers: [{name: web, image: \"nginx:latest\"}]\n    \
         expect: {allowed: true, waived: 1}\n",
    )
    .unwrap();
    let ex = write_exception(dir.path(), "shop-latest", 100);
    let b = bundle.display().to_string();
    // With the exception: the new case passes, and the cases that expect no-latest-tag
    // to deny `web` in shop fail, naming the waiver: the exception is wider than meant.
    let o = palisade(&["test", &b, "--exceptions", &ex, "-o", "json"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let report: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    let cases = report["bundles"][0]["cases"].as_array().unwrap();
    let status = |name: &str| cases.iter().find(|c| c["name"] == name).map(|c| c["status"].clone()).unwrap();
    assert_eq!(status("latest in shop is waived"), "passed");
    assert_eq!(status("latest tag is denied"), "failed");
    let failures = cases.iter().find(|c| c["name"] == "latest tag is denied").unwrap()["failures"].to_string();
    assert!(failures.contains("1 waived by exceptions") && failures.contains("by shop-latest"), "{failures}");
    // test takes the exception flags every command takes: a wider warning window warns.
    assert!(!text(&o.stderr).contains("expires in"), "{}", text(&o.stderr));
    let o = palisade(&["test", &b, "--exceptions", &ex, "--warn-expiry-days", "200", "--filter", "waived"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("warning: exception shop-latest expires in 99 days"), "{}", text(&o.stderr));
    // Without it, the waiver the case expects is missing.
    let o = palisade(&["test", &b, "--filter", "waived"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).contains("expected 1 waived finding(s) of policy no-latest-tag, got 0"),
        "{}",
        text(&o.stdout)
    );
}

/// `serve` re-reads its exception files when they change, as it does its bundles: an
/// exception renewed in place starts waiving again without a restart.
#[test]
fn serve_reloads_exception_files_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let ex = write_exception(dir.path(), "shop-latest", -1);
    let (ca, _) = e2e::ca_in(dir.path());
    let serve = e2e::Serve::start(&ca, dir.path(), &["-b", BASIC, "--exceptions", &ex]);
    let client = ca.client();
    let metrics = || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            connect(&client, serve.addr()).await.unwrap().request("GET", "/metrics", vec![]).await.1
        })
    };
    assert!(metrics().contains("palisade_exceptions_expired 1"), "{}", metrics());
    write_exception(dir.path(), "shop-latest", 100);
    let start = std::time::Instant::now();
    while !metrics().contains("palisade_exceptions_active 1") {
        assert!(start.elapsed() < Duration::from_secs(20), "not reloaded: {}", metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
    let review: Value =
        serde_json::from_str(&std::fs::read_to_string(common::engine_dir().join(REVIEW)).unwrap()).unwrap();
    let answer = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { connect(&client, serve.addr()).await.unwrap().review(&review).await });
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}
