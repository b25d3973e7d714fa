//! trackedge-loadgen: a fixed-rate (open-loop) HTTP/1.1 load generator.
//!
//! wrk runs closed loops: a connection sends its next request only when the
//! previous answer is in, so when the server stalls, the requests that would
//! have arrived meanwhile are never sent and their latency is never measured
//! ("coordinated omission"). This tool instead draws up a global schedule,
//! request `i` due at `start + i / rate`, and measures every latency from the
//! request's *scheduled* send time. A stall therefore shows up in the tail as
//! it would for real users arriving at that rate.
//!
//! N keep-alive connections (one request in flight each) take the due
//! requests in order; if none is idle when a request is due, it waits for the
//! first one to free up, and that wait counts in its latency.
//!
//! One thread (pin it with taskset), and it never spins: a generator that
//! keeps its core busy is preempted for whole time slices by anything else
//! runnable there, and every request due meanwhile goes out late, which it
//! would then report as the server's latency. Instead it sleeps (timer
//! slack 1 ns) until the next send time, but at least `--tick-us` after its
//! last wake-up; then it reads every response that came in meanwhile and
//! sends every request that has come due (`pause_until`). Responses are
//! timed by the kernel's arrival stamp (`os::recv_stamped`), so a response
//! read late because the generator slept still counts from its arrival.
//!
//! Requests come from a file, one a line: `PATH<TAB>Name: value<TAB>...`
//! (lines starting with `#` and empty lines are skipped); request `i` is line
//! `i mod lines`. A `{seq}` in a line becomes `--seq-prefix` followed by `i`,
//! so every request of the run carries a value no other one does (the
//! postback scenario's order ids). With `--expect-body TEXT`, responses whose
//! body holds TEXT are counted (`"status":"approved"` for postbacks). The
//! result is one JSON object on stdout (or `--out FILE`), including the
//! generator's own CPU time and how often it was preempted, and the stalls:
//! stretches of requests each slower than `--stall-us` (default 5,000),
//! with their scheduled times on the CLOCK_MONOTONIC time line, so a
//! kernel trace of the same run (`perf record -k CLOCK_MONOTONIC`) shows
//! what the server was doing then.
//!
//! ```text
//! trackedge-loadgen --target 127.0.0.1:18080 --requests reqs.tsv \
//!     --rate 50000 --duration 20 --warmup 2 --connections 64 [--out r.json] \
//!     [--seq-prefix RUN-] [--expect-body TEXT]
//! ```

mod os;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

/// Default `--tick-us`. Each sleep and wake-up costs the generator CPU (the
/// timer, the switch out and in, waking the server for the next burst): a
/// few µs on bare metal, 20–60 µs on a virtual machine where these trap to
/// the hypervisor. 50 µs keeps wake-ups under 20,000/s while adding at most
/// 50 µs (plus the wake-up's own delay) to a request's dispatch lag, a
/// twentieth of a 1 ms latency target.
const DEFAULT_TICK_US: u64 = 50;

struct Args {
    target: String,
    requests: String,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    timeout: f64,
    /// Shortest sleep between two wake-ups of the dispatcher, in µs.
    tick_us: u64,
    out: Option<String>,
    label: String,
    /// What every `{seq}` starts with (a nonce unique to the run).
    seq_prefix: String,
    /// Text whose presence in a response body is counted.
    expect_body: Option<String>,
    /// A measured request at least this slow (µs, from its scheduled send
    /// time) belongs to a stall.
    stall_us: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: trackedge-loadgen --target HOST:PORT --requests FILE --rate RPS --duration S \
         [--warmup S] [--connections N] [--timeout S] [--tick-us US] [--out FILE] [--label TEXT] \
         [--seq-prefix TEXT] [--expect-body TEXT] [--stall-us US]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        target: String::new(),
        requests: String::new(),
        rate: 0.0,
        duration: 0.0,
        warmup: 0.0,
        connections: 64,
        timeout: 10.0,
        tick_us: DEFAULT_TICK_US,
        out: None,
        label: String::new(),
        seq_prefix: String::new(),
        expect_body: None,
        stall_us: 5_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            usage();
        }
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> f64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("loadgen: {k} wants a number, got {v:?}");
                std::process::exit(2)
            })
        };
        match k.as_str() {
            "--target" => a.target = v,
            "--requests" => a.requests = v,
            "--rate" => a.rate = num(&v),
            "--duration" => a.duration = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--connections" => a.connections = num(&v) as usize,
            "--timeout" => a.timeout = num(&v),
            "--tick-us" => a.tick_us = num(&v) as u64,
            "--out" => a.out = Some(v),
            "--label" => a.label = v,
            "--seq-prefix" => a.seq_prefix = v,
            "--expect-body" => a.expect_body = Some(v).filter(|t| !t.is_empty()),
            "--stall-us" => a.stall_us = num(&v) as u64,
            _ => usage(),
        }
    }
    if a.target.is_empty() || a.requests.is_empty() || a.rate <= 0.0 || a.duration <= 0.0 {
        usage();
    }
    // Bounded by design: never more than an hour of load.
    if a.duration + a.warmup > 3600.0
        || a.connections == 0
        || a.connections > 10_000
        || a.tick_us > 1_000_000
    {
        eprintln!(
            "loadgen: duration + warmup must be at most 3600 s, connections 1..=10000, \
             tick at most 1000000 µs"
        );
        std::process::exit(2)
    }
    a
}

/// One line of the request file, ready to write: the bytes before its
/// `{seq}` and, when it has one, the bytes after it.
struct Template {
    head: Vec<u8>,
    tail: Option<Vec<u8>>,
}

impl Template {
    fn new(request: String) -> Template {
        match request.split_once("{seq}") {
            Some((head, tail)) => Template {
                head: head.as_bytes().to_vec(),
                tail: Some(tail.as_bytes().to_vec()),
            },
            None => Template {
                head: request.into_bytes(),
                tail: None,
            },
        }
    }

    /// Request `index` of the run: the template with `{seq}` filled in,
    /// written into `scratch` when it has one.
    fn render<'a>(&'a self, prefix: &str, index: u64, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let Some(tail) = &self.tail else {
            return &self.head;
        };
        scratch.clear();
        scratch.extend_from_slice(&self.head);
        scratch.extend_from_slice(prefix.as_bytes());
        scratch.extend_from_slice(index.to_string().as_bytes());
        scratch.extend_from_slice(tail);
        scratch
    }
}

fn load_requests(path: &str, host: &str) -> Vec<Template> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("loadgen: cannot read {path}: {e}");
        std::process::exit(1)
    });
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t');
        let path = parts.next().unwrap_or("/");
        let mut r = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        for h in parts {
            if !h.is_empty() {
                r.push_str(h);
                r.push_str("\r\n");
            }
        }
        r.push_str("\r\n");
        out.push(Template::new(r));
    }
    if out.is_empty() {
        eprintln!("loadgen: no requests in {path}");
        std::process::exit(1)
    }
    out
}

#[derive(Clone, Copy)]
struct Job {
    index: u64,
    sched: Instant,
    measured: bool,
}

#[derive(Default)]
struct Counts {
    completed: u64,
    measured: u64,
    status: [u64; 6], // index = status / 100, measured requests only
    all_3xx: u64,     // warm-up included
    all_2xx: u64,     // warm-up included
    /// Responses whose body held `--expect-body`: all, and measured.
    all_expected: u64,
    expected: u64,
    errors: u64,
    reconnects: u64,
    bytes: u64,
    /// Measured responses without a kernel arrival time, timed when read.
    unstamped: u64,
    first_error: Option<String>,
}

struct Shared {
    pool: Vec<Template>,
    seq_prefix: String,
    expect_body: Option<Vec<u8>>,
    target: String,
    timeout: Duration,
    idle: RefCell<VecDeque<usize>>,
    idle_notify: Notify,
    latency: RefCell<Histogram<u64>>,
    service: RefCell<Histogram<u64>>,
    lag: RefCell<Histogram<u64>>,
    counts: RefCell<Counts>,
    last_done: Cell<Option<Instant>>,
    stall_ns: u64,
    /// `(scheduled send time, latency ns)` of measured requests at least
    /// `stall_ns` slow, the first `MAX_SLOW` of them.
    slow: RefCell<Vec<(Instant, u64)>>,
}

/// Slow requests kept for the stall list (a 100 ms stall at 35,000/s is
/// 3,500 of them).
const MAX_SLOW: usize = 200_000;

/// Slow requests whose scheduled times are closer than this belong to one
/// stall.
const STALL_GAP: Duration = Duration::from_millis(2);

/// The stalls: runs of slow requests, each with its first and last
/// scheduled send time (CLOCK_MONOTONIC, s since boot, and from the
/// schedule's start), how many requests and the worst latency.
fn stalls(slow: &[(Instant, u64)], start: Instant) -> Value {
    let mut v: Vec<(Instant, u64)> = slow.to_vec();
    v.sort_by_key(|s| s.0);
    let mut out: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        let mut worst = v[i].1;
        while j + 1 < v.len() && v[j + 1].0.duration_since(v[j].0) < STALL_GAP {
            j += 1;
            worst = worst.max(v[j].1);
        }
        let (first, last) = (v[i].0, v[j].0);
        out.push(json!({
            "first_mono_s": os::monotonic_ns(first) as f64 / 1e9,
            "last_mono_s": os::monotonic_ns(last) as f64 / 1e9,
            "first_s": round3(first.saturating_duration_since(start).as_secs_f64()),
            "span_ms": round3(last.duration_since(first).as_secs_f64() * 1e3),
            "requests": j - i + 1,
            "worst_ms": round3(worst as f64 / 1e6),
        }));
        i = j + 1;
    }
    Value::Array(out)
}

fn new_hist() -> Histogram<u64> {
    // nanoseconds, 1 ns .. 100 s, 3 significant digits
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

fn ns(d: Duration) -> u64 {
    (d.as_nanos() as u64).max(1)
}

struct Response {
    status: u16,
    /// Head and body.
    bytes: usize,
    /// The server said `Connection: close`.
    close: bool,
    /// The body held the text looked for.
    expected: bool,
    /// When its last byte reached the socket (kernel receive time), if known.
    arrived: Option<Instant>,
}

/// Reads into `buf`; keeps the kernel's arrival time of what it read.
async fn recv(
    s: &TcpStream,
    buf: &mut Vec<u8>,
    arrived: &mut Option<Instant>,
) -> Result<usize, String> {
    let mut chunk = [0u8; 16 * 1024];
    let (n, at) = s
        .async_io(Interest::READABLE, || {
            os::recv_stamped(s.as_raw_fd(), &mut chunk)
        })
        .await
        .map_err(|e| e.to_string())?;
    if n > 0 && n < chunk.len() {
        // A short read drained the socket: drop the readiness Tokio holds,
        // as its own read does, or the next read starts with a recvmsg that
        // can only fail with EAGAIN. (A closure returning WouldBlock is how
        // try_io is told to clear it; no syscall.)
        let _ = s.try_io(Interest::READABLE, || {
            Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
        });
    }
    buf.extend_from_slice(&chunk[..n]);
    if at.is_some() {
        *arrived = at;
    }
    Ok(n)
}

/// Reads one response. `buf` keeps any surplus.
async fn read_response(
    s: &TcpStream,
    buf: &mut Vec<u8>,
    expect: Option<&[u8]>,
) -> Result<Response, String> {
    let mut arrived = None;
    let mut scanned = 0;
    let head_end = loop {
        if let Some(p) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            break scanned + p + 4;
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
        if recv(s, buf, &mut arrived).await? == 0 {
            return Err("connection closed by the server".into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "non-UTF-8 head".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut body = 0usize;
    let mut close = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            body = v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            return Err("chunked responses are not supported".into());
        } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let total = head_end + body;
    while buf.len() < total {
        if recv(s, buf, &mut arrived).await? == 0 {
            return Err("connection closed mid-body".into());
        }
    }
    let expected = expect.is_some_and(|t| buf[head_end..total].windows(t.len()).any(|w| w == t));
    buf.drain(..total);
    Ok(Response {
        status,
        bytes: total,
        close,
        expected,
        arrived,
    })
}

async fn connect(target: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    os::stamp_arrivals(s.as_raw_fd()).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    Ok(s)
}

async fn connection(me: usize, sh: Rc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut stream: Option<TcpStream> = match connect(&sh.target).await {
        Ok(s) => Some(s),
        Err(e) => {
            sh.counts.borrow_mut().first_error.get_or_insert(e);
            return;
        }
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut scratch = Vec::new();
    loop {
        sh.idle.borrow_mut().push_back(me);
        sh.idle_notify.notify_one();
        let Some(job) = rx.recv().await else { break };
        let req = sh.pool[(job.index % sh.pool.len() as u64) as usize].render(
            &sh.seq_prefix,
            job.index,
            &mut scratch,
        );
        let sent = Instant::now();
        if job.measured {
            let _ = sh
                .lag
                .borrow_mut()
                .record(ns(sent.saturating_duration_since(job.sched)));
        }
        let res = tokio::time::timeout(sh.timeout, async {
            if stream.is_none() {
                stream = Some(connect(&sh.target).await?);
                buf.clear();
            }
            // Unwrap: connected just above if it was not.
            let s = stream.as_mut().unwrap();
            s.write_all(req).await.map_err(|e| e.to_string())?;
            read_response(s, &mut buf, sh.expect_body.as_deref()).await
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        let read = Instant::now();
        sh.last_done.set(Some(read));
        let mut c = sh.counts.borrow_mut();
        match res {
            Ok(r) => {
                if r.close {
                    stream = None;
                    c.reconnects += 1;
                }
                c.completed += 1;
                c.bytes += r.bytes as u64;
                match r.status / 100 {
                    2 => c.all_2xx += 1,
                    3 => c.all_3xx += 1,
                    _ => {}
                }
                if r.expected {
                    c.all_expected += 1;
                    if job.measured {
                        c.expected += 1;
                    }
                }
                if job.measured {
                    let done = r.arrived.unwrap_or_else(|| {
                        c.unstamped += 1;
                        read
                    });
                    c.measured += 1;
                    c.status[(r.status / 100).min(5) as usize] += 1;
                    let took = ns(done.saturating_duration_since(job.sched));
                    let _ = sh.latency.borrow_mut().record(took);
                    if took >= sh.stall_ns {
                        let mut slow = sh.slow.borrow_mut();
                        if slow.len() < MAX_SLOW {
                            slow.push((job.sched, took));
                        }
                    }
                    let _ = sh
                        .service
                        .borrow_mut()
                        .record(ns(done.saturating_duration_since(sent)));
                }
            }
            Err(e) => {
                stream = None;
                c.errors += 1;
                c.reconnects += 1;
                if c.first_error.is_none() {
                    c.first_error = Some(e);
                }
                if job.measured {
                    // An error still took this long; keep it in the tail.
                    let _ = sh
                        .latency
                        .borrow_mut()
                        .record(ns(read.saturating_duration_since(job.sched)));
                }
            }
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn summary(h: &Histogram<u64>) -> Value {
    let us = |v: u64| (v as f64 / 1000.0 * 10.0).round() / 10.0;
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "mean": (h.mean() / 100.0).round() / 10.0,
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p99_9": us(h.value_at_quantile(0.999)),
        "p99_99": us(h.value_at_quantile(0.9999)),
        "max": us(h.max()),
    })
}

/// Lets the connections write what they were just handed, sleeps the whole
/// thread until `wake`, then lets them take in what arrived meanwhile.
///
/// The thread sleeps here, in a plain blocking sleep, rather than in the
/// runtime's epoll_wait, where every response coming in would wake it. On a
/// virtual machine each wake-up of an idle CPU costs the woken thread 10 to
/// 20 µs of CPU (timer and interrupt handling trap to the hypervisor), which
/// at 40,000 requests/s is most of a core. Here it wakes once per send time
/// or tick, whichever is later, and reads everything that came in since;
/// each response is timed by the kernel's arrival stamp, so reading it late
/// does not count against the server.
async fn pause_until(wake: Instant) {
    // yield_now reschedules this task behind every task it has woken (the
    // connections handed a request) and behind a poll of the IO driver.
    tokio::task::yield_now().await;
    let left = wake.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
    tokio::task::yield_now().await;
}

async fn run(a: Args) -> Value {
    let pool = load_requests(&a.requests, &a.target);
    let pool_len = pool.len();
    let sh = Rc::new(Shared {
        pool,
        seq_prefix: a.seq_prefix.clone(),
        expect_body: a.expect_body.clone().map(String::into_bytes),
        target: a.target.clone(),
        timeout: Duration::from_secs_f64(a.timeout),
        idle: RefCell::new(VecDeque::with_capacity(a.connections)),
        idle_notify: Notify::new(),
        latency: RefCell::new(new_hist()),
        service: RefCell::new(new_hist()),
        lag: RefCell::new(new_hist()),
        counts: RefCell::new(Counts::default()),
        last_done: Cell::new(None),
        stall_ns: a.stall_us.saturating_mul(1000),
        slow: RefCell::new(Vec::new()),
    });
    // Open every connection before the clock starts.
    let mut senders = Vec::with_capacity(a.connections);
    let mut tasks = Vec::with_capacity(a.connections);
    for me in 0..a.connections {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::task::spawn_local(connection(me, sh.clone(), rx)));
    }
    // Every connection connects before it first reports idle: wait for all.
    let t0 = Instant::now();
    while sh.idle.borrow().len() < a.connections {
        if t0.elapsed() > Duration::from_secs(10) {
            let err = sh.counts.borrow().first_error.clone();
            return json!({"error": format!("cannot connect to {}: {err:?}", a.target)});
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let tick = Duration::from_micros(a.tick_us);
    let interval = 1e9 / a.rate;
    let start = Instant::now() + Duration::from_millis(50);
    let warm_end = start + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.duration);
    let mut no_idle = 0u64;
    let mut i: u64 = 0;
    // When the dispatcher last meant to wake (the actual wake-up comes a
    // little later; counting from the plan keeps the ticks `tick` apart).
    let mut wake = start;
    let usage0 = os::Usage::now();
    let mut usage_measured = None;
    let mut first_measured = 0;
    loop {
        let sched = start + Duration::from_nanos((i as f64 * interval) as u64);
        if sched >= end {
            break;
        }
        if Instant::now() < sched {
            // At least a tick after the last wake-up: when requests are
            // denser than that, one wake-up sends all that came due.
            wake = sched.max(wake + tick);
            pause_until(wake).await;
        }
        let c = loop {
            if let Some(c) = sh.idle.borrow_mut().pop_front() {
                break c;
            }
            no_idle += 1;
            sh.idle_notify.notified().await;
        };
        let measured = sched >= warm_end;
        if measured && usage_measured.is_none() {
            usage_measured = Some((Instant::now(), os::Usage::now()));
            first_measured = i;
        }
        let _ = senders[c].send(Job {
            index: i,
            sched,
            measured,
        });
        i += 1;
    }
    let dispatched = i;
    // The measured window's CPU: from its first send to its last (the drain
    // after it is mostly idle waiting).
    let usage_end = (Instant::now(), os::Usage::now());
    drop(senders);
    let drain = tokio::time::timeout(sh.timeout + Duration::from_secs(1), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    let usage_all = os::Usage::now();
    let window = usage_measured.map(|(t, u)| {
        let wall = usage_end.0.saturating_duration_since(t).as_secs_f64();
        let cpu = (usage_end.1.cpu().saturating_sub(u.cpu())).as_secs_f64();
        json!({
            "wall_s": round3(wall),
            "cpu_s": round3(cpu),
            "core_share": if wall > 0.0 { round3(cpu / wall) } else { 0.0 },
            "cpu_us_per_request": round3(cpu * 1e6 / (dispatched - first_measured).max(1) as f64),
            "voluntary_switches": usage_end.1.voluntary_switches - u.voluntary_switches,
            "involuntary_switches": usage_end.1.involuntary_switches - u.involuntary_switches,
        })
    });
    let c = sh.counts.borrow();
    let measured_s = a.duration;
    let last = sh
        .last_done
        .get()
        .map(|d| d.saturating_duration_since(start).as_secs_f64());
    json!({
        "label": a.label,
        "target": a.target,
        "requests_file": a.requests,
        "request_pool": pool_len,
        "rate": a.rate,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "connections": a.connections,
        "dispatched": dispatched,
        "completed": c.completed,
        "measured": c.measured,
        "achieved_rps": ((c.measured as f64 / measured_s) * 10.0).round() / 10.0,
        "errors": c.errors,
        "first_error": c.first_error,
        "reconnects": c.reconnects,
        "unfinished": dispatched - c.completed - c.errors,
        "drained": drain.is_ok(),
        "last_response_s": last,
        "all_3xx": c.all_3xx,
        "all_2xx": c.all_2xx,
        // Responses whose body held --expect-body (null without it): over
        // the whole run, warm-up included, and in the measured window.
        "expected_body": a.expect_body.as_ref().map(|t| json!({
            "text": t,
            "all": c.all_expected,
            "measured": c.expected,
        })),
        "status": {"1xx": c.status[1], "2xx": c.status[2], "3xx": c.status[3], "4xx": c.status[4], "5xx": c.status[5]},
        "bytes_per_response": if c.completed > 0 { c.bytes as f64 / c.completed as f64 } else { 0.0 },
        // From each request's scheduled send time: what a user arriving at
        // that moment would have waited (free of coordinated omission).
        "latency_us": summary(&sh.latency.borrow()),
        // From the moment the request was actually written to its arrival.
        "service_us": summary(&sh.service.borrow()),
        // How late each request was written: the generator's tick and
        // wake-up, or every connection busy. Included in latency_us.
        "dispatch_lag_us": summary(&sh.lag.borrow()),
        "dispatches_waiting_for_idle_connection": no_idle,
        // Runs of requests each at least stall_us slow (see stalls()).
        "stall_us": a.stall_us,
        "slow_requests": sh.slow.borrow().len(),
        "stalls": stalls(&sh.slow.borrow(), start),
        // Measured responses timed when read, not by the kernel's stamp
        // (should be 0; if not, their latency includes the generator's sleep).
        "unstamped_responses": c.unstamped,
        "tick_us": a.tick_us,
        // The generator's own CPU (getrusage RUSAGE_SELF): user and system
        // over the whole process so far, and `schedule` from the start of
        // the send schedule to the end of the drain...
        "cpu_s": {
            "user": round3(usage_all.user.as_secs_f64()),
            "system": round3(usage_all.system.as_secs_f64()),
            "schedule": round3(usage_all.cpu().saturating_sub(usage0.cpu()).as_secs_f64()),
        },
        // ...and over the measured window: its share of one core, and how
        // often something else on its CPU preempted it (involuntary).
        "measured_window": window,
    })
}

fn main() {
    let a = parse_args();
    let out = a.out.clone();
    if let Err(e) = os::precise_sleeps() {
        eprintln!("loadgen: cannot set the timer slack: {e}");
        std::process::exit(1)
    }
    // One thread: block_on runs the runtime on this one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let v = local.block_on(&rt, run(a));
    let text = serde_json::to_string_pretty(&v).expect("json");
    match out {
        Some(p) => std::fs::write(&p, text + "\n").unwrap_or_else(|e| {
            eprintln!("loadgen: cannot write {p}: {e}");
            std::process::exit(1)
        }),
        None => println!("{text}"),
    }
    if v.get("error").is_some() {
        std::process::exit(1)
    }
}
