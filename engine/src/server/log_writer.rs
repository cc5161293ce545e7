//! The decision-log writer thread: takes records from the request handlers' queue,
//! appends them to the hash-chained file, and keeps the metrics honest about what did
//! not make it. The server keeps answering when the log fails (a webhook that stops
//! admitting because its disk is full locks a fail-closed cluster); instead nothing is
//! lost silently: every decision that was dropped (queue full past the deadline) or not
//! written (disk full) is counted in the metrics, logged once per outage, and recorded
//! in the chain itself by a `gap` entry as soon as writing works again.

use tokio::sync::mpsc;

use super::DecisionLogConfig;
use super::metrics::Metrics;
use crate::decision_log::{Record, Writer};
use crate::error::{Error, Result};

/// Opens the log and starts the thread that writes it.
pub(super) fn start(
    config: &DecisionLogConfig,
    metrics: &Metrics,
) -> Result<(mpsc::Sender<Record>, std::thread::JoinHandle<()>)> {
    let mut writer = Writer::open(&config.path, config.max_size, config.keep)?;
    if writer.lost() > 0 {
        tracing::warn!(path = %config.path.display(), "the decision log ended in an incomplete entry (a crash mid-write); it was set aside and a gap entry records it");
    }
    let (tx, mut rx) = mpsc::channel::<Record>(4096);
    let path = config.path.display().to_string();
    let (dropped, write_errors, unlogged) = (
        metrics.decision_log_dropped.clone(),
        metrics.decision_log_write_errors.clone(),
        metrics.decision_log_unlogged.clone(),
    );
    let handle = std::thread::Builder::new()
        .name("palisade-decision-log".into())
        .spawn(move || {
            let (mut dropped_seen, mut failing) = (0, false);
            let mut note_drops = |writer: &mut Writer, time: &str| {
                let dropped_now = dropped.get();
                if dropped_now > dropped_seen {
                    let reason = "the log queue was full past the request deadline";
                    writer.note_lost(dropped_now - dropped_seen, time, reason);
                    dropped_seen = dropped_now;
                }
            };
            while let Some(record) = rx.blocking_recv() {
                note_drops(&mut writer, &record.time);
                match writer.append(record) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::warn!(path, "decision log writable again; a gap entry records what is missing");
                    }
                    Ok(()) => {}
                    Err(e) => {
                        write_errors.inc();
                        if !failing {
                            failing = true;
                            tracing::error!(path, "decision log write failed, decisions are not being logged: {e}");
                        }
                    }
                }
                unlogged.set(writer.lost() as i64);
            }
            // Shutting down: what is still missing is recorded now, not by a next run.
            let now = jiff::Timestamp::now().to_string();
            note_drops(&mut writer, &now);
            if let Err(e) = writer.close(&now) {
                tracing::error!(
                    path,
                    lost = writer.lost(),
                    "decision log: the final gap entry could not be written: {e}"
                );
            }
        })
        .map_err(|e| Error::io("decision log", "cannot start the writer thread", e))?;
    Ok((tx, handle))
}
