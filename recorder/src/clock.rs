//! Kernel timestamps are CLOCK_MONOTONIC; recordings are in UTC so they line up with
//! pcaps and logs. UTC = monotonic + offset, the offset measured at start (recorded in
//! the manifest) and re-measured every interval to follow NTP adjustments.

fn now(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

pub fn mono_ns() -> i64 {
    now(libc::CLOCK_MONOTONIC)
}

pub fn realtime_ns() -> i64 {
    now(libc::CLOCK_REALTIME)
}

/// A duration in ns, saturating at `i64::MAX` (≈ 292 years): durations come from the
/// command line, rules files and the control socket, and a cast would wrap
/// `1000y` into a negative number.
pub fn duration_ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// REALTIME − MONOTONIC, from the tightest of a few bracketing reads.
pub fn measure_offset() -> i64 {
    let mut best = (i64::MAX, 0);
    for _ in 0..7 {
        let a = realtime_ns();
        let m = mono_ns();
        let b = realtime_ns();
        if b - a < best.0 {
            best = (b - a, a + (b - a) / 2 - m);
        }
    }
    best.1
}

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub offset_ns: i64,
    /// Largest change of the offset seen since start.
    pub max_drift_ns: i64,
    pub initial_ns: i64,
}

impl Clock {
    pub fn new() -> Self {
        let o = measure_offset();
        Clock { offset_ns: o, max_drift_ns: 0, initial_ns: o }
    }

    #[inline]
    pub fn utc(&self, mono_ns: u64) -> i64 {
        mono_ns as i64 + self.offset_ns
    }

    /// Follows the wall clock; small jitter (< 1 ms) is ignored.
    pub fn refresh(&mut self) {
        let o = measure_offset();
        if (o - self.offset_ns).abs() > 1_000_000 {
            self.offset_ns = o;
        }
        self.max_drift_ns = self.max_drift_ns.max((o - self.initial_ns).abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_of_now_is_now() {
        let c = Clock::new();
        let utc = c.utc(mono_ns() as u64);
        assert!((utc - realtime_ns()).abs() < 5_000_000);
    }
}
