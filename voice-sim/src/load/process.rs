//! Figures of the current process for load benchmarks: CPU time, resident memory, threads,
//! and raising the open-file limit. Linux reads `/proc` and calls `getrusage`/`setrlimit`;
//! elsewhere every figure is `None` and the limit is left alone.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// CPU time (user + system) the whole process has used so far.
pub fn cpu_time() -> Option<Duration> {
    imp::cpu_time()
}

/// Resident set size (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_field("VmRSS:").map(|kib| kib.saturating_mul(1024))
}

/// Threads of the process (`Threads` in `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    status_field("Threads:").and_then(|n| usize::try_from(n).ok())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (thousands of connections need a socket
/// or two each). Returns the soft limit in force afterwards, `None` where unsupported or when
/// the limits cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    imp::raise_nofile_limit()
}

/// One look at the process: when, CPU used so far, memory, threads.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// When the sample was taken.
    pub at: Instant,
    /// [`cpu_time`].
    pub cpu: Option<Duration>,
    /// [`rss_bytes`].
    pub rss_bytes: Option<u64>,
    /// [`thread_count`].
    pub threads: Option<usize>,
}

impl ProcessSample {
    /// Samples the process now.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: cpu_time(),
            rss_bytes: rss_bytes(),
            threads: thread_count(),
        }
    }

    /// CPU used and wall time passed from `earlier` to this sample.
    pub fn since(&self, earlier: &ProcessSample) -> ProcessUsage {
        ProcessUsage {
            wall: self.at.saturating_duration_since(earlier.at),
            cpu: self
                .cpu
                .zip(earlier.cpu)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// CPU and wall time between two [`ProcessSample`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// Wall time.
    pub wall: Duration,
    /// CPU time (user + system), when known.
    pub cpu: Option<Duration>,
}

impl ProcessUsage {
    /// CPU time per unit of work (e.g. per packet the server counted).
    pub fn cpu_per(&self, units: u64) -> Option<Duration> {
        let units = u32::try_from(units).ok().filter(|u| *u > 0)?;
        Some(self.cpu? / units)
    }

    /// Cores used on average (CPU time / wall time).
    pub fn cores(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then_some(self.cpu?.as_secs_f64() / wall)
    }
}

/// The number after `name` in `/proc/self/status` (kB for memory fields).
fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// The calling thread's id, to read its CPU time from another thread ([`thread_cpu_time`]).
pub(crate) fn current_thread_id() -> Option<u32> {
    // "/proc/thread-self" links to "PID/task/TID".
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time of thread `tid` of this process so far (`/proc/self/task/TID/schedstat`, in ns).
pub(crate) fn thread_cpu_time(tid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(target_os = "linux")]
mod imp {
    use std::time::Duration;

    use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
    use nix::sys::time::TimeVal;

    pub(super) fn cpu_time() -> Option<Duration> {
        let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
        Some(duration(usage.user_time())? + duration(usage.system_time())?)
    }

    fn duration(time: TimeVal) -> Option<Duration> {
        let seconds = u64::try_from(time.tv_sec()).ok()?;
        let micros = u32::try_from(time.tv_usec()).ok()?;
        Some(Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros)))
    }

    pub(super) fn raise_nofile_limit() -> Option<u64> {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Duration;

    pub(super) fn cpu_time() -> Option<Duration> {
        None
    }

    pub(super) fn raise_nofile_limit() -> Option<u64> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_there_on_linux() {
        let before = ProcessSample::now();
        // Burn a little CPU so the difference is not negative or absent.
        let mut x = 0u64;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let after = ProcessSample::now();
        assert!(after.rss_bytes.is_some_and(|rss| rss > 0));
        assert!(after.threads.is_some_and(|n| n >= 1));
        let usage = after.since(&before);
        assert!(usage.cpu.is_some());
        let tid = current_thread_id();
        assert!(tid.is_some_and(|tid| thread_cpu_time(tid).is_some()));
        let limit = raise_nofile_limit();
        assert!(limit.is_some_and(|l| l > 0));
    }

    #[test]
    fn usage_divides_without_panicking() {
        let usage = ProcessUsage {
            wall: Duration::from_secs(2),
            cpu: Some(Duration::from_secs(1)),
        };
        assert_eq!(usage.cpu_per(1_000_000), Some(Duration::from_micros(1)));
        assert_eq!(usage.cpu_per(0), None);
        assert_eq!(usage.cores(), Some(0.5));
        assert_eq!(ProcessUsage::default().cores(), None);
    }
}
