//! `palisade log verify`.

use std::path::PathBuf;

use anyhow::Result;
use palisade::decision_log::{Verdict, verify};

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a hash-chained decision log: reports the first altered, removed or
    /// reordered line, or OK. Give rotated files oldest first (FILE.2 FILE.1 FILE).
    Verify {
        /// Log files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Verify { files } => match verify(&files)? {
            Verdict::Ok { lines, first_seq, gaps, lost } => {
                let start = if first_seq > 1 {
                    format!(" (the chain starts at entry {first_seq}; earlier entries are in older files)")
                } else {
                    String::new()
                };
                println!("OK: {lines} entries verified{start}");
                if gaps > 0 {
                    println!(
                        "{gaps} gap(s): the writer recorded {lost} decision(s) it could not log (see the `gap` entries)"
                    );
                }
                Ok(Outcome::Ok)
            }
            Verdict::Broken { file, line, problem } => {
                println!("{file}:{line}: {problem}");
                Ok(Outcome::Denied)
            }
        },
    }
}
