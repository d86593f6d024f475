//! Memory and latency figures: a heap-counting allocator, resident memory from `/proc`, and
//! latency percentiles.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// Bytes requested from the allocator and not yet freed.
static HEAP_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Allocations not yet freed.
static HEAP_BLOCKS: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting the bytes and blocks in use. The counts are the sizes the
/// program requested. The allocator's own overhead per block (8 to 16 bytes with glibc) is not
/// in them, but resident memory includes it.
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the same arguments and only updates counters.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            HEAP_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            HEAP_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            HEAP_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            HEAP_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from this allocator, hence from `System`, with `layout`.
        unsafe { System.dealloc(pointer, layout) };
        HEAP_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        HEAP_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            HEAP_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        moved
    }
}

/// Memory in use at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set size (`VmRSS` in `/proc/self/status`), in bytes.
    pub resident: i64,
    /// Heap bytes in use, as requested.
    pub heap: i64,
    /// Heap blocks in use.
    pub blocks: i64,
}

impl Memory {
    /// Reads the memory in use now.
    pub fn now() -> Result<Self, String> {
        Ok(Self {
            resident: resident_bytes()?,
            heap: HEAP_BYTES.load(Ordering::Relaxed) as i64,
            blocks: HEAP_BLOCKS.load(Ordering::Relaxed) as i64,
        })
    }

    /// Returns free heap to the operating system where the allocator can, then reads the
    /// memory in use. See [`release_free_heap`].
    pub fn settled() -> Result<Self, String> {
        release_free_heap();
        Self::now()
    }

    /// Returns the growth from `earlier` to `self`.
    pub fn since(&self, earlier: &Memory) -> Memory {
        Memory {
            resident: self.resident - earlier.resident,
            heap: self.heap - earlier.heap,
            blocks: self.blocks - earlier.blocks,
        }
    }

    /// Formats a growth as totals.
    pub fn totals(&self) -> String {
        format!(
            "resident {:+.1} MiB; heap {:+.1} MiB in {} blocks",
            mib(self.resident),
            mib(self.heap),
            self.blocks
        )
    }

    /// Formats a growth as totals and per device.
    pub fn per_device(&self, devices: usize) -> String {
        let devices = devices.max(1) as f64;
        format!(
            "resident {:+.1} MiB = {:.0} B/device; heap {:+.1} MiB = {:.0} B/device in {:.1} blocks/device",
            mib(self.resident),
            self.resident as f64 / devices,
            mib(self.heap),
            self.heap as f64 / devices,
            self.blocks as f64 / devices,
        )
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Returns the allocator's free memory to the operating system where it can (glibc's
/// `malloc_trim`), so that resident memory shows what is in use rather than what the allocator
/// keeps for reuse. Elsewhere it does nothing.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` takes a byte count, touches only the allocator's free lists and
        // is safe to call from any thread at any time.
        unsafe { malloc_trim(0) };
    }
}

/// Reads `VmRSS` from `/proc/self/status`.
fn resident_bytes() -> Result<i64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|error| format!("reading /proc/self/status failed: {error}"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("/proc/self/status has no VmRSS line")?;
    let kib: i64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|error| format!("VmRSS in {line:?} is not a number: {error}"))?;
    Ok(kib * 1024)
}

/// Returns the first three fields of `/proc/loadavg`, or a note that it could not be read.
pub fn load_average() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(text) => text
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        Err(error) => format!("unreadable ({error})"),
    }
}

/// Latency percentiles of one set of timed calls.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    /// Summarizes `samples` with nearest-rank percentiles; `None` when there are none.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |percent: usize| {
            let index = (samples.len() * percent).div_ceil(100).max(1) - 1;
            samples[index]
        };
        Some(Self {
            count: samples.len(),
            p50: rank(50),
            p99: rank(99),
            max: samples[samples.len() - 1],
        })
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>8.1} µs, p99 {:>8.1} µs, max {:>8.1} µs ({} calls)",
            micros(self.p50),
            micros(self.p99),
            micros(self.max),
            self.count
        )
    }
}

/// Returns `duration` in microseconds.
pub fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Returns `duration` in milliseconds.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
