//! The kernel's tick rate (CONFIG_HZ). TCP's chrono counters, behind `flows.busy_ns`
//! and the limited times, count jiffies. HZ is in neither BTF nor sysconf (whose
//! `_SC_CLK_TCK` is USER_HZ, always 100), and `/proc/config.gz` or `/boot/config-*` are
//! often missing (and never inside a container), so it is measured: `/proc/timer_list`
//! begins with the kernel's clock (`now at N nsecs`) and shows `jiffies: J`; two
//! readings 100 ms apart give J per second, which is one of the few values Kconfig
//! allows.

use std::io::{BufRead, BufReader};
use std::time::Duration;

const TIMER_LIST: &str = "/proc/timer_list";
/// The values Kconfig offers (kernel/Kconfig.hz).
const ALLOWED: [u32; 5] = [100, 250, 300, 1000, 1024];

/// (ns, jiffies) from the head of timer_list; it lists every CPU's timers, so only
/// its first lines are read.
fn reading(path: &str) -> Option<(u64, u64)> {
    let f = std::fs::File::open(path).ok()?;
    let mut now = None;
    for line in BufReader::new(f).lines().take(4096) {
        let line = line.ok()?;
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("now at ") {
            now = rest.strip_suffix(" nsecs")?.parse().ok();
        } else if let Some(j) = line.strip_prefix("jiffies: ") {
            return Some((now?, j.parse().ok()?));
        }
    }
    None
}

/// The allowed HZ nearest to `per_sec`, if within 10 % of it.
fn snap(per_sec: f64) -> Option<u32> {
    let best = ALLOWED.iter().copied().min_by(|a, b| (*a as f64 - per_sec).abs().total_cmp(&(*b as f64 - per_sec).abs()))?;
    ((best as f64 - per_sec).abs() <= best as f64 * 0.1).then_some(best)
}

/// HZ, or why it could not be measured.
pub fn measure() -> Result<u32, String> {
    let why = || format!("cannot read the kernel's clock and jiffies from {TIMER_LIST}");
    let (t0, j0) = reading(TIMER_LIST).ok_or_else(why)?;
    std::thread::sleep(Duration::from_millis(100));
    let (t1, j1) = reading(TIMER_LIST).ok_or_else(why)?;
    let per_sec = j1.wrapping_sub(j0) as f64 * 1e9 / t1.saturating_sub(t0).max(1) as f64;
    snap(per_sec).ok_or_else(|| format!("{TIMER_LIST} gives {per_sec:.0} jiffies per second, not a kernel HZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snaps_to_the_kconfig_values_only() {
        assert_eq!(snap(243.0), Some(250));
        assert_eq!(snap(287.0), Some(300));
        assert_eq!(snap(96.0), Some(100));
        assert_eq!(snap(180.0), None);
        assert_eq!(snap(0.0), None);
    }

    #[test]
    fn this_kernel_agrees_with_its_config() {
        // Where the kernel exposes its config, the measurement must match it.
        let Ok(cfg) = std::process::Command::new("sh").args(["-c", "zcat /proc/config.gz 2>/dev/null | grep '^CONFIG_HZ='"]).output() else { return };
        let text = String::from_utf8_lossy(&cfg.stdout);
        let Some(hz) = text.trim().strip_prefix("CONFIG_HZ=").and_then(|v| v.parse::<u32>().ok()) else { return };
        assert_eq!(measure(), Ok(hz));
    }
}
