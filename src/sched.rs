//! Kernel scheduling of trackedge's own threads: short time slices.
//!
//! Linux's fair scheduler (EEVDF, since 6.6) lets the task it picks run
//! until its slice is used up (`RUN_TO_PARITY`), 3 ms by default, and a
//! task of any nice value, once picked, gets that much: a nice-10
//! background thread faulting in the spare segment, or the shipper
//! compressing, kept the request worker waiting runnable for a 4 ms tick in
//! the load test's kernel traces (loadtests/README.md, Stalls). Since Linux
//! 6.12 a fair task may ask for a shorter slice (`sched_setattr` with
//! `sched_runtime`, 0.1 ms at least): its turn ends sooner, and a task with
//! a shorter slice that wakes preempts one with a longer slice at once
//! (`PREEMPT_SHORT`). Every trackedge thread asks for [`SLICE`]: the
//! request workers, so that a redirect due preempts whatever runs, and the
//! background threads, so that their turns are short. On older kernels or
//! other systems the request is refused and nothing changes.

use std::time::Duration;

/// The slice every trackedge thread asks for: the shortest Linux grants.
pub const SLICE: Duration = Duration::from_micros(100);

/// Asks the kernel for [`SLICE`] on the calling thread, keeping its nice
/// value. Returns whether the kernel granted it.
#[cfg(target_os = "linux")]
pub fn shorten_slice() -> bool {
    /// `struct sched_attr` as of Linux 4.13 (`SCHED_ATTR_SIZE_VER1`).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    // SAFETY: getpriority reads the calling thread's nice value (tid 0 is
    // the caller); errno is not consulted, -1 is a valid nice value too.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: SLICE.as_nanos() as u64,
        sched_deadline: 0,
        sched_period: 0,
        sched_util_min: 0,
        sched_util_max: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes of a live, initialised
    // struct; pid 0 is the calling thread; flags 0.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// Not Linux: nothing to ask for.
#[cfg(not(target_os = "linux"))]
pub fn shorten_slice() -> bool {
    false
}

/// Pins the calling thread to the `i`-th CPU it may run on (in the
/// affinity mask it inherited, the process's): the public listener's
/// request threads, one per CPU, each keep a CPU of their own, so a
/// request thread that wakes finds its CPU rather than queueing behind
/// another request thread where the kernel placed both. Returns the CPU,
/// or `None` where the kernel refuses (nothing changed).
#[cfg(target_os = "linux")]
pub fn pin_to_allowed_cpu(i: usize) -> Option<usize> {
    let cpu = *allowed_cpus()?.get(i)?;
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu came from a set, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes of a live
    // set; pid 0 is the calling thread.
    let set = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) };
    (set == 0).then_some(cpu)
}

/// The CPUs the calling thread may run on, in order.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: as above.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the kernel writes at most
    // `size_of::<cpu_set_t>()` bytes into the live set.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) }
        != 0
    {
        return None;
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: c is below CPU_SETSIZE, inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
        .collect();
    Some(cpus)
}

/// Not Linux: nothing pinned.
#[cfg(not(target_os = "linux"))]
pub fn pin_to_allowed_cpu(_i: usize) -> Option<usize> {
    None
}

/// The calling thread's slice as the kernel keeps it, if it says
/// (`/proc/thread-self/sched`, `se.slice`, in ns).
pub fn current_slice() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    text.lines()
        .find(|l| l.trim_start().starts_with("se.slice"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ns| Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<usize> {
        allowed_cpus().expect("the affinity mask is readable")
    }

    #[test]
    fn a_pinned_thread_keeps_the_one_cpu_it_was_given() {
        let before = allowed();
        let last = before.len() - 1;
        let got = std::thread::spawn(move || (pin_to_allowed_cpu(last), allowed()))
            .join()
            .unwrap();
        assert_eq!(got, (Some(before[last]), vec![before[last]]));
        // One past the CPUs there are: refused, nothing changed.
        let n = before.len();
        let got = std::thread::spawn(move || (pin_to_allowed_cpu(n), allowed()))
            .join()
            .unwrap();
        assert_eq!(got, (None, before));
    }

    /// Where the kernel grants the slice it is the one in force after, and
    /// the nice value is kept; where it refuses, nothing changed.
    #[test]
    fn the_slice_asked_for_is_the_slice_in_force() {
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        std::thread::spawn(move || {
            // SAFETY: changes only this thread's nice value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 3) };
            let before = current_slice();
            if shorten_slice() {
                assert_eq!(current_slice(), Some(SLICE));
            } else {
                assert_eq!(current_slice(), before);
            }
            assert_eq!(nice(), 3);
        })
        .join()
        .unwrap();
    }
}
