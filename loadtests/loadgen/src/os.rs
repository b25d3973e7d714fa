//! What the generator asks of Linux directly: precise sleeps, the kernel's
//! receive time of each response, and its own CPU use.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Makes this thread's sleeps end on time.
///
/// Linux lets a sleep run over by the thread's timer slack (50 µs by
/// default) so that it can batch wake-ups; the dispatcher's sleeps need to
/// end within a few µs of the next send time.
pub fn precise_sleeps() -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer (nanoseconds).
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to stamp each segment this socket receives with the
/// time it arrived (SO_TIMESTAMPNS); [`recv_stamped`] returns it.
pub fn stamp_arrivals(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads from a non-blocking socket with [`stamp_arrivals`] on. Returns the
/// bytes read and when the last of them reached the socket, if the kernel
/// said: so a response read late, because the generator was asleep or busy,
/// still counts from when it came in.
pub fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one SCM_TIMESTAMPNS message (CMSG_SPACE(16) = 32 bytes),
    // 8-byte aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive
    // the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the lengths it states.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // The stamp is CLOCK_REALTIME; Instant is CLOCK_MONOTONIC. Both are
    // slewed alike, so the stamp's age carries over from one to the other.
    let (now_real, now) = (realtime(), Instant::now());
    let mut arrived = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // within the msg_controllen it set.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let age = now_real.saturating_sub(timespec(ts));
                arrived = Some(now.checked_sub(age).unwrap_or(now));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, arrived))
}

/// `at` on the CLOCK_MONOTONIC time line, in ns since boot: the clock
/// `perf record -k CLOCK_MONOTONIC` stamps its samples with, so a slow
/// request can be found in a kernel trace of the same run.
pub fn monotonic_ns(at: Instant) -> u64 {
    // SAFETY: an all-zero timespec is valid for clock_gettime to fill.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    let now = Instant::now();
    // SAFETY: CLOCK_MONOTONIC with a valid pointer cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mono_now = timespec(ts).as_nanos() as i128;
    let delta = if at >= now {
        at.duration_since(now).as_nanos() as i128
    } else {
        -(now.duration_since(at).as_nanos() as i128)
    };
    (mono_now + delta).max(0) as u64
}

fn realtime() -> Duration {
    // SAFETY: an all-zero timespec is valid for clock_gettime to fill.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_REALTIME with a valid pointer cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    timespec(ts)
}

fn timespec(ts: libc::timespec) -> Duration {
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The process's CPU time and context switches so far (getrusage).
#[derive(Clone, Copy)]
pub struct Usage {
    pub user: Duration,
    pub system: Duration,
    /// Switches away because the thread waited (sleeping, nothing to read).
    pub voluntary_switches: u64,
    /// Switches away while it could have run: preempted by another thread
    /// on its CPU. Each is a stretch in which due requests go out late.
    pub involuntary_switches: u64,
}

impl Usage {
    /// Reads RUSAGE_SELF.
    pub fn now() -> Usage {
        // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Usage {
            user: tv(ru.ru_utime),
            system: tv(ru.ru_stime),
            voluntary_switches: ru.ru_nvcsw as u64,
            involuntary_switches: ru.ru_nivcsw as u64,
        }
    }

    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}
