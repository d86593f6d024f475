//! CPU and resident memory of this process, sampled on a timer so no actor ever waits for it.
//!
//! sysinfo computes CPU usage from the difference between two refreshes, so the sampler refreshes
//! only this process, once per period, on tokio's blocking pool, and keeps the latest result.
//! Readers take that result without waiting. The first sample has no CPU figure, because it has no
//! earlier refresh to compare with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::task::JoinHandle;

/// The shortest sampling period: sysinfo documents that CPU usage is not accurate when two
/// refreshes are closer together than `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (200 ms on Linux
/// in sysinfo 0.38).
pub const MIN_SAMPLE_PERIOD: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// One measurement of this process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    /// CPU time used since the previous sample, as a percentage of one core (200.0 is two busy
    /// cores), or `None` for the first sample.
    pub cpu_percent: Option<f32>,
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
}

/// A timer task that samples this process and keeps the latest [`ProcessSample`].
///
/// Dropping the sampler stops its task.
#[derive(Debug)]
pub struct ProcessSampler {
    latest: Arc<Mutex<Option<ProcessSample>>>,
    task: JoinHandle<()>,
}

impl ProcessSampler {
    /// Starts sampling every `period` (at least [`MIN_SAMPLE_PERIOD`]) on the current tokio
    /// runtime.
    ///
    /// Returns `None`, after logging a warning, when sysinfo cannot find this process's id on
    /// this platform. Heartbeats then carry no process figures.
    pub fn start(period: Duration) -> Option<Self> {
        let pid = match sysinfo::get_current_pid() {
            Ok(pid) => pid,
            Err(reason) => {
                tracing::warn!(
                    reason,
                    "process sampling is off: sysinfo cannot find this process's id"
                );
                return None;
            }
        };

        let latest = Arc::new(Mutex::new(None));
        let period = period.max(MIN_SAMPLE_PERIOD);
        let task = tokio::spawn(sample_periodically(pid, period, latest.clone()));
        Some(Self { latest, task })
    }

    /// Returns the latest sample, or `None` before the first one.
    pub fn latest(&self) -> Option<ProcessSample> {
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for ProcessSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sample_periodically(
    pid: Pid,
    period: Duration,
    latest: Arc<Mutex<Option<ProcessSample>>>,
) {
    let mut system = System::new();
    let mut refreshed_before = false;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        ticks.tick().await;

        // Reading /proc is a few small file reads, but still blocking I/O, so it runs on the
        // blocking pool. The `System` moves there and back because it keeps the previous CPU
        // times that the next usage figure is computed from.
        let refreshed = tokio::task::spawn_blocking(move || {
            let sample = refresh_own_process(&mut system, pid);
            (system, sample)
        })
        .await;

        let Ok((returned, sample)) = refreshed else {
            tracing::warn!("process sampling stopped: the sampling task panicked");
            return;
        };
        system = returned;

        let Some(mut sample) = sample else {
            tracing::warn!(
                pid = pid.as_u32(),
                "process sampling stopped: sysinfo cannot read this process"
            );
            return;
        };
        if !refreshed_before {
            sample.cpu_percent = None;
            refreshed_before = true;
        }
        *latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sample);
    }
}

fn refresh_own_process(system: &mut System, pid: Pid) -> Option<ProcessSample> {
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let process = system.process(pid)?;
    Some(ProcessSample {
        cpu_percent: Some(process.cpu_usage()),
        resident_memory_bytes: process.memory(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sampler_reports_memory_then_cpu() {
        let sampler = ProcessSampler::start(MIN_SAMPLE_PERIOD).unwrap();

        let mut samples = Vec::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(sample) = sampler.latest()
                && samples.last() != Some(&sample)
            {
                samples.push(sample);
            }
            if samples.len() >= 2 {
                break;
            }
        }

        assert!(samples.len() >= 2, "{samples:?}");
        assert_eq!(samples[0].cpu_percent, None);
        assert!(samples[0].resident_memory_bytes > 0, "{samples:?}");
        assert!(samples[1].cpu_percent.is_some(), "{samples:?}");
    }
}
