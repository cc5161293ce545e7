//! Palisade's own audit trail (PCI DSS 10.3.2, 10.3.4 applied to the policy
//! engine): every admission decision appended as one JSON line to a file whose
//! lines are hash-chained. Each line carries `prev` (the hash of the line before
//! it, continuing across rotated files) and `hash` (the sha256 of the line's own
//! bytes up to `hash`), so [`verify`] finds the first altered, removed or
//! reordered line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an admission decision logs (everything but the chain fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339 time of the decision.
    pub time: String,
    /// AdmissionRequest uid.
    pub uid: String,
    /// Requesting user.
    pub user: String,
    /// CREATE, UPDATE, ...
    pub operation: String,
    /// `Kind/namespace/name` of the object.
    pub object: String,
    /// `name@version (digest)` of each bundle.
    pub bundles: Vec<String>,
    /// Policies evaluated.
    pub policies: Vec<String>,
    /// `allowed`, `denied`, or `error`.
    pub result: String,
    /// Policies that denied.
    #[serde(default)]
    pub denied_by: Vec<String>,
    /// Policies that warned.
    #[serde(default)]
    pub warned_by: Vec<String>,
    /// Findings a PolicyException waived, as `policy: exception` (the request was
    /// judged as if they were absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waived: Vec<String>,
    /// Policies that matched but were not evaluated, as `bundle/policy: reason`
    /// (referential policies at admission without an inventory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Evaluation latency in microseconds.
    pub latency_us: u64,
    /// Why the request could not be evaluated (`result` is `error`): a malformed
    /// AdmissionReview, bundles not loaded, the deadline passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line: the record with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    seq: u64,
    #[serde(flatten)]
    record: Record,
    prev: String,
}

/// Appends records to a hash-chained log file, rotating it by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
    seq: u64,
    last_hash: String,
}

impl Writer {
    /// Opens (or creates) the log; an existing file's last line continues the chain.
    /// `max_size` bytes trigger rotation to `FILE.1` (older files shift up to `FILE.{keep}`).
    pub fn open(path: impl Into<PathBuf>, max_size: u64, keep: usize) -> Result<Writer> {
        let path = path.into();
        let (seq, last_hash) = match last_line(&path)? {
            Some(line) => {
                let (body, hash) = split_line(&line).ok_or_else(|| Error::Integrity {
                    path: path.clone(),
                    message: "the last line is not a decision-log entry; refusing to continue its chain".into(),
                })?;
                let body: Body = serde_json::from_str(&body).map_err(|e| Error::Integrity {
                    path: path.clone(),
                    message: format!("the last line is not a decision-log entry: {e}"),
                })?;
                (body.seq, hash.to_string())
            }
            None => (0, GENESIS.to_string()),
        };
        let file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, "cannot open", e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer { path, file, size, max_size, keep: keep.max(1), seq, last_hash })
    }

    /// Appends one record and flushes it to the operating system.
    pub fn append(&mut self, record: Record) -> Result<()> {
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate()?;
        }
        let body = Body { seq: self.seq + 1, record, prev: self.last_hash.clone() };
        let text = serde_json::to_string(&body).map_err(|e| Error::input("decision log", e.to_string()))?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        // `{...,"prev":"…"}` becomes `{...,"prev":"…","hash":"…"}`.
        let line = format!("{},\"hash\":\"{hash}\"}}\n", &text[..text.len() - 1]);
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, "cannot write", e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, "cannot write", e))?;
        self.size += line.len() as u64;
        self.seq += 1;
        self.last_hash = hash;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1)).map_err(|e| Error::io(&self.path, "cannot rotate", e))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "cannot open", e))?;
        self.size = 0;
        Ok(())
    }
}

fn last_line(path: &Path) -> Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "cannot read", e)),
    };
    let mut last = None;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| Error::io(path, "cannot read", e))?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    Ok(last)
}

/// Splits a line into the hashed body (`{...,"prev":"…"}`) and its `hash`.
fn split_line(line: &str) -> Option<(String, &str)> {
    let idx = line.rfind(",\"hash\":\"")?;
    let hash = line[idx + 9..].strip_suffix("\"}")?;
    (hash.len() == 64).then(|| (format!("{}}}", &line[..idx]), hash))
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every line is intact and in order.
    Ok {
        /// Lines checked.
        lines: usize,
        /// `seq` of the first line (greater than 1 when earlier files are not given).
        first_seq: u64,
    },
    /// The first problem found.
    Broken {
        /// File.
        file: String,
        /// Line number in the file (1-based).
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Verifies one or more log files, oldest first (`decisions.jsonl.2
/// decisions.jsonl.1 decisions.jsonl`), as one chain.
pub fn verify(files: &[PathBuf]) -> Result<Verdict> {
    let mut prev_hash: Option<String> = None;
    let mut prev_seq: Option<u64> = None;
    let mut lines = 0;
    let mut first_seq = 0;
    for path in files {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot read", e))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, "cannot read", e))?;
            let broken = |problem: String| Verdict::Broken { file: path.display().to_string(), line: i + 1, problem };
            if line.trim().is_empty() {
                return Ok(broken("empty line in the log".into()));
            }
            let Some((body_text, hash)) = split_line(&line) else {
                return Ok(broken("altered: the line has no valid hash field".into()));
            };
            if hex::encode(Sha256::digest(body_text.as_bytes())) != hash {
                return Ok(broken("altered: the line's content does not match its hash".into()));
            }
            let body: Body = match serde_json::from_str(&body_text) {
                Ok(b) => b,
                Err(e) => return Ok(broken(format!("altered: not a decision-log entry ({e})"))),
            };
            match (&prev_hash, prev_seq) {
                (Some(h), Some(s)) => {
                    if body.prev != *h {
                        return Ok(broken(format!(
                            "removed or reordered: its prev does not match the hash of the line before it (seq {} follows seq {s})",
                            body.seq
                        )));
                    }
                    if body.seq != s + 1 {
                        return Ok(broken(format!("removed or reordered: seq {} follows seq {s}", body.seq)));
                    }
                }
                _ => {
                    first_seq = body.seq;
                    if body.seq == 1 && body.prev != GENESIS {
                        return Ok(broken(
                            "altered: the first entry of the chain does not start from the genesis hash".into(),
                        ));
                    }
                }
            }
            prev_hash = Some(hash.to_string());
            prev_seq = Some(body.seq);
            lines += 1;
        }
    }
    Ok(Verdict::Ok { lines, first_seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> Record {
        Record {
            time: format!("2026-11-30T00:00:{n:02}Z"),
            uid: format!("uid-{n}"),
            user: "alice".into(),
            operation: "CREATE".into(),
            object: format!("Pod/shop/p{n}"),
            bundles: vec!["pci-dss@1.0.0".into()],
            policies: vec!["pss-privileged".into()],
            result: if n.is_multiple_of(2) { "allowed" } else { "denied" }.into(),
            denied_by: vec![],
            warned_by: vec![],
            skipped: vec![],
            waived: vec![],
            latency_us: 120,
            error: None,
        }
    }

    fn write(path: &Path, n: u32) {
        let mut w = Writer::open(path, 0, 3).unwrap();
        for i in 1..=n {
            w.append(record(i)).unwrap();
        }
    }

    #[test]
    fn intact_log_verifies_and_restarts_continue_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        write(&p, 3);
        write(&p, 2); // reopened: continues at seq 4
        assert_eq!(verify(std::slice::from_ref(&p)).unwrap(), Verdict::Ok { lines: 5, first_seq: 1 });
    }

    #[test]
    fn detects_altered_removed_and_reordered_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        write(&p, 5);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let check = |content: String| {
            std::fs::write(&p, content).unwrap();
            verify(std::slice::from_ref(&p)).unwrap()
        };
        let altered = text.replacen("\"result\":\"denied\"", "\"result\":\"allowed\"", 1);
        match check(altered) {
            Verdict::Broken { line, problem, .. } => assert_eq!((line, problem.starts_with("altered")), (1, true)),
            v => panic!("{v:?}"),
        }
        let removed = [lines[0], lines[1], lines[3], lines[4]].join("\n") + "\n";
        match check(removed) {
            Verdict::Broken { line, problem, .. } => {
                assert_eq!(line, 3);
                assert!(problem.contains("seq 4 follows seq 2"), "{problem}");
            }
            v => panic!("{v:?}"),
        }
        let reordered = [lines[0], lines[2], lines[1], lines[3], lines[4]].join("\n") + "\n";
        match check(reordered) {
            Verdict::Broken { line, problem, .. } => {
                assert_eq!((line, problem.starts_with("removed or reordered")), (2, true))
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn rotation_keeps_one_chain_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let mut w = Writer::open(&p, 600, 5).unwrap();
        for i in 1..=10 {
            w.append(record(i)).unwrap();
        }
        let mut files: Vec<PathBuf> =
            (1..=5).rev().map(|i| dir.path().join(format!("d.jsonl.{i}"))).filter(|f| f.exists()).collect();
        assert!(files.len() >= 2, "{files:?}");
        files.push(p.clone());
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { lines: 10, first_seq: 1 });
        // The current file alone verifies from where it starts.
        match verify(std::slice::from_ref(&p)).unwrap() {
            Verdict::Ok { first_seq, .. } => assert!(first_seq > 1),
            v => panic!("{v:?}"),
        }
    }
}
