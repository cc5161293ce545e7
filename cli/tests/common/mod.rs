//! Helpers of the binary's tests: run `palisade` as a user does and read its
//! streams and exit code. The repository paths and file helpers are the library
//! tests' (`engine/tests/common`), included here so they live once.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub mod cluster;
pub mod registry;
pub mod vap;

#[path = "../../../engine/tests/common/mod.rs"]
mod shared;
pub use shared::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// A `palisade` command run from `engine/` (where fixture paths resolve), without color.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(engine_dir()).env("NO_COLOR", "1");
    cmd
}

/// Runs `palisade ARGS` from `engine/` with stdin closed.
pub fn palisade(args: &[&str]) -> Output {
    palisade_stdin(args, None)
}

/// Runs `palisade ARGS` from `dir`.
pub fn palisade_in(dir: &Path, args: &[&str]) -> Output {
    command().current_dir(dir).args(args).stdin(Stdio::null()).output().expect("run palisade")
}

/// Runs `palisade ARGS` from `engine/`, feeding `stdin` when given.
pub fn palisade_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = command();
    cmd.args(args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run palisade");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for palisade")
}

/// The exit code.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}
