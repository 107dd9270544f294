//! [`Recorder::finish`]: the end of a run. What has closed is shipped first (bounded),
//! then the ring is read to the end, open connections and the last statistics are
//! written, the recording is closed, and its last files are shipped.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use tcpfr_schema::manifest::Manifest;

use super::{drain, Recorder};
use crate::clock::mono_ns;
use crate::recorder_stats;
use crate::writer::Msg;

impl Recorder {
    pub(super) fn finish(mut self) -> Result<()> {
        self.let_uploader_catch_up();
        // Shutting down: take what is left in the ring, then close every open connection.
        drain(self.ring.get_mut(), &mut self.enr);
        if let Some(d) = self.drops.as_mut() {
            d.drain(&mut self.enr);
        }
        let end = self.enr.clock.utc(mono_ns() as u64);
        crate::flows::write_open_at_end(&mut self.enr, end);
        let mut rs = self.stats_rows(end);
        rs.extend(self.ship_row(end));
        let mut note = format!("recorder stopped; {} sockets were open", self.enr.sockets.len());
        if self.enr.undecodable > 0 {
            note.push_str(&format!("; {} ring records could not be decoded", self.enr.undecodable));
        }
        rs.push(recorder_stats::note(&self.enr.host, end, note));
        // A last reading of the host counters covers the final partial interval.
        let host_counters = self.counters_thread.stop();
        let _ = self.writer.tx.send(Msg::Finish { rows: self.enr.take_rows(), host_counters, recorder_stats: rs, end });
        let manifest = self.writer.join().context("finishing the recording");
        if let Some(u) = self.uploader {
            ship_the_rest(u, &manifest);
        }
        let manifest = manifest?;
        let _ = std::fs::remove_file(self.opts.out.join(crate::control::SOCKET));
        let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
        tracing::info!("recording complete: {} ({} files, {rows} rows)", self.rec_dir.display(), manifest.files.len());
        Ok(())
    }

    /// Shipping: let the uploader send what has closed (bounded), so that the last
    /// `recorder_stats` rows say what is left; the writer handles what it was sent first.
    fn let_uploader_catch_up(&self) {
        let Some(u) = &self.uploader else { return };
        let (tx, rx) = mpsc::channel();
        if self.writer.tx.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        if !u.drain(crate::ship::DRAIN_TIMEOUT) {
            tracing::warn!("stopping: closed files are still waiting for upload (the last recorder_stats rows count them)");
        }
    }
}

/// The last segment and the final manifest (with `end`) go too, if the store lets us.
fn ship_the_rest(u: crate::ship::Uploader, manifest: &Result<Manifest>) {
    if manifest.is_ok() {
        u.stats.wake();
        if !u.drain(crate::ship::DRAIN_TIMEOUT) {
            let s = &u.stats;
            tracing::warn!(
                "stopping with {} file(s) ({} bytes) not shipped: the next start of tcpfr-recorder --ship (or `tcpfr ship`) sends them",
                s.unshipped_files.load(std::sync::atomic::Ordering::Relaxed),
                s.unshipped_bytes.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    u.stop();
}
