//! Palisade's own audit trail (PCI DSS 10.3.2, 10.3.4 applied to the policy
//! engine): every admission decision appended as one JSON line to a file whose
//! lines are hash-chained. Each line carries `prev` (the hash of the line before
//! it, continuing across rotated files) and `hash` (the sha256 of the line's own
//! bytes up to `hash`), so [`verify`] finds the first altered, removed or
//! reordered line.
//!
//! Failures are never silent. A record that cannot be written (disk full, a file-size
//! limit) is counted and its partial bytes are cut off; the next write that succeeds
//! first appends a `gap` entry to the chain saying how many decisions were not logged,
//! from when to when and why. A last line left incomplete by a crash (`kill -9`, power
//! loss) is moved to `FILE.torn` when the log is reopened and recorded by a gap entry,
//! so the log verifies up to its last complete entry and the chain goes on.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an admission decision logs (everything but the chain fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// Findings an exception would have waived had it not expired, as
    /// `policy: exception (expired TIME)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_exceptions: Vec<String>,
    /// Policies that matched but were not evaluated, as `bundle/policy: reason`
    /// (referential policies at admission without an inventory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Evaluation latency in microseconds.
    pub latency_us: u64,
    /// Why the request could not be evaluated (`result` is `error`): a malformed
    /// AdmissionReview, bundles not loaded, the deadline passed. For a `gap` entry:
    /// what was not logged and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a `gap` entry (`result` is `gap`): how many decisions are missing here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Decisions that could not be written since the last successful write.
#[derive(Debug, Clone)]
struct Lost {
    count: u64,
    since: String,
    error: String,
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
    lost: Option<Lost>,
    /// A failed write left bytes past `size` that could not be cut off yet.
    dirty: bool,
}

impl Writer {
    /// Opens (or creates) the log; an existing file's last line continues the chain.
    /// `max_size` bytes trigger rotation to `FILE.1` (older files shift up to `FILE.{keep}`).
    /// An incomplete last line (a crash mid-write) is moved to `FILE.torn` first.
    pub fn open(path: impl Into<PathBuf>, max_size: u64, keep: usize) -> Result<Writer> {
        let path = path.into();
        let torn = set_aside_torn_tail(&path)?;
        // Empty right after a rotation: the chain goes on from the rotated file.
        let last = match last_line(&path)? {
            Some(line) => Some(line),
            None => last_line(Path::new(&format!("{}.1", path.display())))?,
        };
        let (seq, last_hash) = match last {
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
        if seq == u64::MAX {
            let message = "the chain is at its last sequence number; start a new log file".into();
            return Err(Error::Integrity { path, message });
        }
        let file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, "cannot open", e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let lost = torn.map(|(bytes, kept)| Lost {
            count: 1,
            since: "an earlier run".into(),
            error: format!("an interrupted write left an incomplete entry ({bytes} bytes, kept in {})", kept.display()),
        });
        Ok(Writer { path, file, size, max_size, keep: keep.max(1), seq, last_hash, lost, dirty: false })
    }

    /// Appends one record and flushes it to the operating system. When that fails the
    /// record is counted as lost (see [`Writer::lost`]) and the error returned; the
    /// next successful append writes a `gap` entry before its record.
    pub fn append(&mut self, record: Record) -> Result<()> {
        if let Some(lost) = self.lost.take() {
            let gap = gap_record(&lost, &record.time);
            if let Err(e) = self.write(gap) {
                self.lost = Some(Lost { count: lost.count + 1, ..lost });
                return Err(e);
            }
        }
        let time = record.time.clone();
        self.write(record).inspect_err(|e| {
            self.lost = Some(Lost { count: 1, since: time, error: e.to_string() });
        })
    }

    /// Counts `count` decisions that never reached the writer (`reason`) into the next
    /// gap entry.
    pub fn note_lost(&mut self, count: u64, since: &str, reason: &str) {
        self.lost = Some(match self.lost.take() {
            Some(l) if l.error.contains(reason) => Lost { count: l.count + count, ..l },
            Some(l) => Lost { count: l.count + count, error: format!("{}; {reason}", l.error), ..l },
            None => Lost { count, since: since.to_string(), error: reason.to_string() },
        });
    }

    /// Writes the pending gap entry, if any, as of `time` (at shutdown: what is missing
    /// is recorded now rather than by a next run).
    pub fn close(&mut self, time: &str) -> Result<()> {
        let Some(lost) = self.lost.take() else { return Ok(()) };
        self.write(gap_record(&lost, time)).inspect_err(|_| self.lost = Some(lost))
    }

    /// Decisions not written since the last successful append (the next gap entry).
    pub fn lost(&self) -> u64 {
        self.lost.as_ref().map_or(0, |l| l.count)
    }

    fn write(&mut self, record: Record) -> Result<()> {
        if self.dirty {
            self.file.set_len(self.size).map_err(|e| Error::io(&self.path, "cannot cut off a partial line", e))?;
            self.dirty = false;
        }
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate()?;
        }
        let body = Body { seq: self.seq + 1, record, prev: self.last_hash.clone() };
        let text = serde_json::to_string(&body).map_err(|e| Error::input("decision log", e.to_string()))?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        // `{...,"prev":"…"}` becomes `{...,"prev":"…","hash":"…"}`.
        let line = format!("{},\"hash\":\"{hash}\"}}\n", &text[..text.len() - 1]);
        let written = self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush());
        if let Err(e) = written {
            // Cut off what part of the line made it, so the file stays a chain of whole
            // lines (or remember to, before the next write).
            self.dirty = self.file.set_len(self.size).is_err();
            return Err(Error::io(&self.path, "cannot write", e));
        }
        self.size += line.len() as u64;
        self.seq += 1;
        self.last_hash = hash;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        // A rotation that failed after moving the file (no new file could be created)
        // is finished here without shifting the rotated files again.
        if self.path.exists() {
            let _ = std::fs::remove_file(name(self.keep));
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1)).map_err(|e| Error::io(&self.path, "cannot rotate", e))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "cannot open", e))?;
        self.size = 0;
        Ok(())
    }
}

/// A `gap` entry: `lost.count` decisions were not logged from `lost.since` to `until`.
fn gap_record(lost: &Lost, until: &str) -> Record {
    let Lost { count, since, error } = lost;
    Record {
        time: until.to_string(),
        uid: String::new(),
        user: "palisade".into(),
        operation: String::new(),
        object: String::new(),
        bundles: Vec::new(),
        policies: Vec::new(),
        result: "gap".into(),
        denied_by: Vec::new(),
        warned_by: Vec::new(),
        waived: Vec::new(),
        expired_exceptions: Vec::new(),
        skipped: Vec::new(),
        latency_us: 0,
        error: Some(format!("{count} decision(s) not logged from {since} to {until}: {error}")),
        lost: *count,
    }
}

/// Moves an incomplete last line (no final newline) to `FILE.torn` and cuts it off the
/// log. Returns its length and where it went.
fn set_aside_torn_tail(path: &Path) -> Result<Option<(u64, PathBuf)>> {
    // Read-only until there is something to cut: an append-only log must still open.
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "cannot open", e)),
    };
    let io = |e| Error::io(path, "cannot read", e);
    let len = file.metadata().map_err(io)?.len();
    // A line is a few KiB at most: its start is within the last MiB.
    let start = len.saturating_sub(1 << 20);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io)?;
    if tail.last().is_none_or(|b| *b == b'\n') {
        return Ok(None);
    }
    let refuse = |message: &str| Err(Error::Integrity { path: path.to_path_buf(), message: message.into() });
    let cut = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => return refuse("the last line is incomplete and longer than 1 MiB; refusing to cut it off"),
    };
    // Only the tail of a decision log is cut: the fragment starts like an entry and the
    // line before it is one.
    let (fragment, before) = (&tail[cut..], &tail[..cut]);
    let entry_start = b"{\"seq\":";
    let previous = before.strip_suffix(b"\n").map(|b| &b[b.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1)..]);
    let previous_ok = previous.is_none_or(|l| std::str::from_utf8(l).is_ok_and(|l| split_line(l).is_some()));
    if !(fragment.starts_with(entry_start) || entry_start.starts_with(fragment)) || !previous_ok {
        return refuse("the file does not end like a decision log (an incomplete last line that is not an entry)");
    }
    let torn = PathBuf::from(format!("{}.torn", path.display()));
    let mut out =
        OpenOptions::new().create(true).append(true).open(&torn).map_err(|e| Error::io(&torn, "cannot open", e))?;
    out.write_all(fragment).and_then(|()| out.write_all(b"\n")).map_err(|e| Error::io(&torn, "cannot write", e))?;
    let keep = start + cut as u64;
    let file = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    file.set_len(keep).map_err(|e| Error::io(path, "cannot truncate", e))?;
    Ok(Some((len - keep, torn)))
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
        /// Gap entries: places where the writer recorded that decisions are missing.
        gaps: usize,
        /// Decisions those gap entries say were not logged.
        lost: u64,
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
    let (mut gaps, mut lost) = (0, 0u64);
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
                    if s.checked_add(1) != Some(body.seq) {
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
            if body.record.result == "gap" {
                gaps += 1;
                lost = lost.saturating_add(body.record.lost);
            }
            prev_hash = Some(hash.to_string());
            prev_seq = Some(body.seq);
            lines += 1;
        }
    }
    Ok(Verdict::Ok { lines, first_seq, gaps, lost })
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
            expired_exceptions: vec![],
            latency_us: 120,
            error: None,
            lost: 0,
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
        assert_eq!(verify(std::slice::from_ref(&p)).unwrap(), Verdict::Ok { lines: 5, first_seq: 1, gaps: 0, lost: 0 });
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
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { lines: 10, first_seq: 1, gaps: 0, lost: 0 });
        // The current file alone verifies from where it starts.
        match verify(std::slice::from_ref(&p)).unwrap() {
            Verdict::Ok { first_seq, .. } => assert!(first_seq > 1),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_torn_last_line_is_set_aside_and_recorded_by_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        write(&p, 3);
        let mut text = std::fs::read_to_string(&p).unwrap();
        let line = text.lines().next().unwrap().to_string();
        text.push_str(&line[..40]); // a crash in the middle of the fourth write
        std::fs::write(&p, &text).unwrap();
        assert!(matches!(verify(std::slice::from_ref(&p)).unwrap(), Verdict::Broken { line: 4, .. }));
        write(&p, 2);
        assert_eq!(std::fs::read_to_string(dir.path().join("d.jsonl.torn")).unwrap(), format!("{}\n", &line[..40]));
        let verdict = verify(std::slice::from_ref(&p)).unwrap();
        assert_eq!(verdict, Verdict::Ok { lines: 6, first_seq: 1, gaps: 1, lost: 1 });
        let gap = std::fs::read_to_string(&p).unwrap().lines().nth(3).unwrap().to_string();
        assert!(gap.contains("\"result\":\"gap\"") && gap.contains("incomplete entry (40 bytes"), "{gap}");
    }

    #[test]
    fn failed_writes_leave_no_partial_line_and_a_gap_entry_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let mut w = Writer::open(&p, 0, 3).unwrap();
        w.append(record(1)).unwrap();
        // A file that cannot be written stands in for a full disk.
        let good = std::mem::replace(&mut w.file, File::open(&p).unwrap());
        for i in 2..=4 {
            assert!(w.append(record(i)).is_err());
        }
        assert_eq!(w.lost(), 3);
        w.file = good;
        w.append(record(5)).unwrap();
        assert_eq!(w.lost(), 0);
        let verdict = verify(std::slice::from_ref(&p)).unwrap();
        assert_eq!(verdict, Verdict::Ok { lines: 3, first_seq: 1, gaps: 1, lost: 3 });
        let text = std::fs::read_to_string(&p).unwrap();
        let gap = text.lines().nth(1).unwrap();
        let expected = "3 decision(s) not logged from 2026-11-30T00:00:02Z to 2026-11-30T00:00:05Z";
        assert!(gap.contains(expected), "{gap}");
    }

    #[test]
    fn seq_at_its_maximum_is_refused_not_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let body = Body { seq: u64::MAX, record: record(1), prev: GENESIS.into() };
        let text = serde_json::to_string(&body).unwrap();
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        std::fs::write(&p, format!("{},\"hash\":\"{hash}\"}}\n", &text[..text.len() - 1])).unwrap();
        assert!(Writer::open(&p, 0, 3).unwrap_err().to_string().contains("last sequence number"));
    }

    /// The verifier's side of the same overflow (found by reading the fuzz target's
    /// code path): an entry after seq u64::MAX is a break in the chain, not a wrap to 0.
    #[test]
    fn verify_does_not_wrap_after_the_largest_seq() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let line = |seq: u64, prev: &str| {
            let text = serde_json::to_string(&Body { seq, record: record(1), prev: prev.into() }).unwrap();
            let hash = hex::encode(Sha256::digest(text.as_bytes()));
            (format!("{},\"hash\":\"{hash}\"}}\n", &text[..text.len() - 1]), hash)
        };
        let (first, hash) = line(u64::MAX, GENESIS);
        let (second, _) = line(0, &hash);
        std::fs::write(&p, format!("{first}{second}")).unwrap();
        match verify(&[p]).unwrap() {
            Verdict::Broken { line, problem, .. } => {
                assert_eq!(line, 2);
                assert!(problem.contains("seq 0 follows seq 18446744073709551615"), "{problem}");
            }
            v => panic!("verified across a wrapped seq: {v:?}"),
        }
    }

    #[test]
    fn a_file_that_does_not_end_like_a_log_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "first line\nsecond line without newline").unwrap();
        let e = Writer::open(&p, 0, 3).unwrap_err().to_string();
        assert!(e.contains("does not end like a decision log"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first line\nsecond line without newline");
    }

    #[test]
    fn an_empty_file_after_rotation_continues_the_chain_of_the_rotated_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        write(&p, 3);
        std::fs::rename(&p, dir.path().join("d.jsonl.1")).unwrap();
        std::fs::write(&p, "").unwrap(); // rotated, then stopped before the next write
        write(&p, 2);
        let files = [dir.path().join("d.jsonl.1"), p.clone()];
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { lines: 5, first_seq: 1, gaps: 0, lost: 0 });
    }

    #[test]
    fn a_pending_gap_is_written_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let mut w = Writer::open(&p, 0, 3).unwrap();
        w.append(record(1)).unwrap();
        w.note_lost(4, "2026-11-30T00:00:02Z", "the log queue was full past the request deadline");
        w.close("2026-11-30T00:00:09Z").unwrap();
        assert_eq!(verify(std::slice::from_ref(&p)).unwrap(), Verdict::Ok { lines: 2, first_seq: 1, gaps: 1, lost: 4 });
    }
}
