//! A plugin that misbehaves in the way its settings ask (`{"mode": "..."}`):
//! `loop` (never returns), `memory` (grows memory without bound), `trap` (executes
//! `unreachable`), `recursion` (overflows the stack), `output` (writes 100 MB to
//! stdout), `malformed` (returns details that are not JSON), `error` (returns an
//! error), `counter` (reports how many times this instance has evaluated: always 1
//! when instances are fresh), `exit` (calls `exit(3)`), `probe` (reports what it can
//! see of the environment, the filesystem and the clock), `ok` (behaves). Test-only.

use std::sync::atomic::{AtomicU32, Ordering};

use palisade_sdk::bindings::{Guest, PluginMetadata, Violation};
use palisade_sdk::{ABI_VERSION, Request};
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    mode: String,
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
fn recurse(n: u64, acc: &mut [u64; 64]) -> u64 {
    acc[(n % 64) as usize] = n;
    if n == u64::MAX { 0 } else { recurse(n + 1, acc) + acc[(n % 7) as usize] }
}

struct Hostile;

impl Guest for Hostile {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "misbehaves on request".into(),
            abi_version: ABI_VERSION.into(),
            kinds: vec!["Pod".into()],
            requirements: vec![],
            settings_schema: None,
        }
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        let s: Settings = serde_json::from_str(&settings).map_err(|e| e.to_string())?;
        if s.mode == "reject-settings" { Err("mode reject-settings is never valid".into()) } else { Ok(()) }
    }

    fn evaluate(input: String) -> Result<Vec<Violation>, String> {
        let request = Request::parse(&input)?;
        let s: Settings = request.settings()?;
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        match s.mode.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => std::process::abort(),
            "recursion" => {
                let mut acc = [0u64; 64];
                let r = recurse(0, &mut acc);
                Ok(vec![Violation { message: format!("{r}"), details: None, path: None }])
            }
            "output" => {
                let line = "x".repeat(1024);
                for _ in 0..100 * 1024 {
                    println!("{line}");
                }
                Ok(vec![])
            }
            "malformed" => {
                Ok(vec![Violation { message: "looks fine".into(), details: Some("{not json".into()), path: None }])
            }
            "error" => Err("cannot evaluate this input".into()),
            "exit" => std::process::exit(3),
            "probe" => {
                let env = std::env::vars().count();
                let file = std::fs::read("/etc/hostname").map(|_| "read".to_string()).unwrap_or_else(|e| e.to_string());
                let clock = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let message = format!("env={env} file={file} clock={}", if clock > 0 { "running" } else { "zero" });
                Ok(vec![Violation { message, details: None, path: None }])
            }
            "counter" => {
                Ok(vec![Violation { message: format!("evaluation number {calls}"), details: None, path: None }])
            }
            _ => Ok(vec![]),
        }
    }

    /// Each policy's call in turn, in this one instance: `counter` shows the instance
    /// is shared by the policies of one object.
    fn evaluate_batch(review: String, settings: Vec<String>) -> Vec<Result<Vec<Violation>, String>> {
        settings.into_iter().map(|s| Self::evaluate(format!("{{\"review\":{review},\"parameters\":{s}}}"))).collect()
    }
}

palisade_sdk::bindings::export!(Hostile with_types_in palisade_sdk::bindings);
