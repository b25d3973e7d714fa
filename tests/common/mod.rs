//! Test harness: real Redis and ClickHouse processes on loopback ports, and
//! trackedge processes driven over HTTP.
//!
//! One Redis and one ClickHouse serve a whole test binary; each test gets
//! its own ClickHouse database and Redis key prefix, so tests run in
//! parallel without seeing each other. Child processes die with the test
//! process (PR_SET_PDEATHSIG), so nothing is left running.
//!
//! Ports: tests run in parallel (here and in other checkouts on the same
//! machine), so a port found free may be taken before a server binds it.
//! trackedge's public listener binds port 0 and the harness reads the bound
//! address from its log; every other listener is started on a port that
//! looked free, and started again on another one if its bind fails.
//!
//! Files: every directory a server writes (data, spool, logs) is a temporary
//! directory removed with the server (the shared servers' ones when the test
//! process exits), and kept for diagnosis only when a test fails.
//!
//! Time: waits poll for the awaited event and give up only after
//! [`PATIENCE`], a failure guard far above any expected wait: no test
//! asserts that something was fast.
#![allow(dead_code)]

pub mod chromium;
pub mod dom;
mod services;
pub use services::*;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The admin token every test server uses.
pub const TOKEN: &str = "test-admin-token";
/// The signing secret every test server uses.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// How long a wait goes on before the test fails: a guard against a hang,
/// not a claim about speed (the machine may be shared and slow).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// How often waits poll.
const POLL: Duration = Duration::from_millis(20);

/// How many ports a server start tries before giving up.
const START_ATTEMPTS: u32 = 10;

/// A loopback port that was free a moment ago (bound, then released):
/// whoever binds it must cope with losing it to someone else.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `N` distinct ports that were free a moment ago.
fn free_ports<const N: usize>() -> [u16; N] {
    // Held together so that the kernel hands out distinct ports.
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A loopback port that refuses every connection, as an address where a
/// server is down: bound, so no server can take it, but never listening.
pub struct RefusingPort {
    socket: socket2::Socket,
}

impl RefusingPort {
    /// Binds a fresh one.
    pub fn new() -> RefusingPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("creating a socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        socket.bind(&any.into()).expect("binding a loopback port");
        RefusingPort { socket }
    }

    /// An HTTP URL at this port.
    pub fn url(&self) -> String {
        let addr = self.socket.local_addr().unwrap().as_socket().unwrap();
        format!("http://{addr}")
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a server binary on PATH or in the sbin directories.
fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/services.sh install");
}

/// Spawns `cmd` so that it dies when this test process does.
fn spawn_tied(cmd: &mut Command) -> Child {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("spawning a server process")
}

/// Runs `f` on a thread that lives as long as the process: PDEATHSIG fires
/// when the *thread* that spawned a child exits, so children of servers
/// shared by all tests are spawned there.
fn on_keeper_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tx.send(f()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap()
}

/// Polls `f` until it returns `Some`; panics naming `what` if that takes
/// longer than [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Awaits `f` until it returns `Some`; panics naming `what` if that takes
/// longer than [`PATIENCE`]. For waits whose check is itself async.
pub async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The ports `pid` listens on (TCP over IPv4), in the order of its file
/// descriptors.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut sockets: Vec<(u32, u64)> = fds
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            let inode = link
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect();
    sockets.sort_unstable();
    // Lines: `sl local_address rem_address st ... inode ...`, addresses as
    // hex `IP:PORT`, state 0A is LISTEN.
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let listening: HashMap<u64, u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if *f.get(3)? != "0A" {
                return None;
            }
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            Some((f.get(9)?.parse().ok()?, port))
        })
        .collect();
    sockets
        .iter()
        .filter_map(|(_, inode)| listening.get(inode).copied())
        .collect()
}

/// How a server process's start ended.
enum Started {
    /// It listens on every port it was given.
    Listening,
    /// Another process had one of its ports.
    PortTaken,
}

/// Waits until `child` listens on all of `ports` and `ready()` holds, or
/// exits: because one of its ports was taken when `taken(log)` says so
/// (the caller then tries other ports), otherwise a test failure.
fn await_start(
    what: &str,
    child: &mut Child,
    ports: &[u16],
    log: &dyn Fn() -> String,
    taken: &dyn Fn(&str) -> bool,
    ready: &dyn Fn() -> bool,
) -> Started {
    wait_for(&format!("{what} to listen on {ports:?}"), || {
        if let Some(status) = child.try_wait().expect("polling a child process") {
            let log = log();
            if taken(&log) {
                return Some(Started::PortTaken);
            }
            panic!("{what} exited {status} before listening on {ports:?}: {log}");
        }
        // The process's own sockets, not just an answer on the port: a
        // server that lost its port to another would otherwise look up.
        let mine = listening_ports(child.id());
        (ports.iter().all(|p| mine.contains(p)) && ready()).then_some(Started::Listening)
    })
}

/// Both Redis and ClickHouse say this when a port is taken.
fn address_in_use(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// Directories that outlive every test: those of the servers shared by the
/// whole binary, which live in a static and are never dropped.
static AT_EXIT: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// Stops `pid` and removes `dir` when the test process exits.
fn clean_up_at_exit(pid: u32, dir: &Path) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain function that only kills, reaps and
        // removes what the list names.
        let rc = unsafe { libc::atexit(stop_shared_servers) };
        assert_eq!(rc, 0, "atexit refused the clean-up handler");
    });
    AT_EXIT.lock().unwrap().push((pid, dir.to_path_buf()));
}

extern "C" fn stop_shared_servers() {
    let Ok(mut list) = AT_EXIT.lock() else {
        return;
    };
    for (pid, dir) in list.drain(..) {
        // SAFETY: the pid is a child of this process not reaped yet (its
        // `Child` lives in a static that is never dropped).
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A temporary directory shared by clones of a [`ServerConfig`], removed
/// with the last of them, or kept (and named on stderr) when that happens
/// during a test failure, for diagnosis.
struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("trackedge-{name}-"))
            .tempdir()
            .expect("creating a temporary directory");
        Scratch(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if std::thread::panicking() {
                eprintln!("kept {} for diagnosis", dir.keep().display());
            }
        }
    }
}

/// Runs `f` on a thread of its own: reqwest's blocking client refuses to
/// run on a thread that drives an async runtime, and the harness is called
/// from plain and async tests alike.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("blocking request thread"))
}

/// One blocking HTTP request: status and body, or `None` when nothing
/// answers. Never follows redirects.
fn http_blocking(method: reqwest::Method, url: &str, body: &str) -> Option<(u16, String)> {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    off_runtime(|| {
        let client = CLIENT.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                // A hung server fails the test instead of hanging it.
                .timeout(PATIENCE)
                .build()
                .expect("building the blocking HTTP client")
        });
        let resp = client
            .request(method, url)
            .body(body.to_string())
            .send()
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().ok()?))
    })
}

/// Blocking GET.
pub fn http_get_blocking(url: &str) -> Option<(u16, String)> {
    http_blocking(reqwest::Method::GET, url, "")
}

/// Blocking POST.
pub fn http_post_blocking(url: &str, body: &str) -> Option<(u16, String)> {
    http_blocking(reqwest::Method::POST, url, body)
}

/// The Redis and ClickHouse shared by this test binary.
pub struct Services {
    pub redis: Redis,
    pub clickhouse: ClickHouse,
}

/// Starts (once) and returns the shared services.
pub fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| {
        on_keeper_thread(|| {
            let s = Services {
                redis: Redis::start(),
                clickhouse: ClickHouse::start(),
            };
            let redis_dir = s.redis.dir.as_ref().expect("the data dir").path();
            clean_up_at_exit(s.redis.child.id(), redis_dir);
            let ch_pid = s.clickhouse.child.as_ref().expect("running").id();
            clean_up_at_exit(ch_pid, s.clickhouse.dir.path());
            s
        })
    })
}

/// A name unique within this test run: database and key prefix.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings of one trackedge process.
#[derive(Clone)]
pub struct ServerConfig {
    pub redis_url: String,
    pub clickhouse_url: String,
    pub database: String,
    pub prefix: String,
    /// Inside `scratch`: servers started from clones of this config share
    /// the spool, as a restarted node does.
    pub spool_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// CPUs the server may use (`taskset -c`), all when `None`.
    pub cpus: Option<String>,
    /// Holds the spool and the servers' logs; removed with the last clone
    /// (the servers keep one).
    scratch: Arc<Scratch>,
}

impl ServerConfig {
    /// A fresh database, prefix and spool on the shared services.
    pub fn new(tag: &str) -> ServerConfig {
        let s = services();
        let name = unique_name(tag);
        let scratch = Arc::new(Scratch::new(&name));
        ServerConfig {
            redis_url: s.redis.url(),
            clickhouse_url: s.clickhouse.url(),
            database: name.clone(),
            prefix: format!("{name}:"),
            spool_dir: scratch.path().join("spool"),
            env: Vec::new(),
            cpus: None,
            scratch,
        }
    }

    /// The same settings with a spool of its own, for a second node.
    pub fn other_node(&self) -> ServerConfig {
        let scratch = Arc::new(Scratch::new(&unique_name("node")));
        ServerConfig {
            spool_dir: scratch.path().join("spool"),
            scratch,
            ..self.clone()
        }
    }

    /// Runs the server on these CPUs only (a `taskset -c` list), as on a
    /// one-CPU machine with `"0"`.
    pub fn on_cpus(mut self, cpus: &str) -> Self {
        self.cpus = Some(cpus.to_string());
        self
    }

    /// Adds an environment variable.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running trackedge process.
pub struct Server {
    child: Option<Child>,
    /// The public listener's base URL; known once the server serves (see
    /// [`Server::wait_ready`]), empty before.
    pub public: String,
    /// The admin listener's base URL, which answers from the start.
    pub admin: String,
    pub config: ServerConfig,
    pub log: PathBuf,
}

impl Server {
    /// Starts `trackedge serve`, waits until it is ready and until it has
    /// migrated its ClickHouse database: `/readyz` does not wait for
    /// ClickHouse (redirects work through its outages), but a test that
    /// queries the tables right away does.
    pub fn start(config: ServerConfig) -> Server {
        let s = Server::start_with_clickhouse_down(config);
        s.wait_migrated();
        s
    }

    /// Starts `trackedge serve` where ClickHouse does not answer, and waits
    /// until it is ready.
    pub fn start_with_clickhouse_down(config: ServerConfig) -> Server {
        let mut s = Server::spawn(config);
        s.wait_ready();
        s
    }

    /// Starts `trackedge serve` and waits only until it has bound its
    /// listeners (the admin one answers from then on; the public one once
    /// the catalog is loaded). Both take port 0; the server logs the
    /// addresses it bound before it waits for anything.
    pub fn spawn(config: ServerConfig) -> Server {
        static LOGS: AtomicU32 = AtomicU32::new(0);
        let n = LOGS.fetch_add(1, Ordering::Relaxed);
        let log = config.scratch.path().join(format!("trackedge-{n}.log"));
        let mut child = Server::command(&config, &log);
        let (public, admin) = wait_for("trackedge to bind its listeners", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("trackedge exited {status}: {text}");
            }
            bound_addresses(&text)
        });
        Server {
            child: Some(child),
            public: format!("http://{public}"),
            admin: format!("http://{admin}"),
            config,
            log,
        }
    }

    fn command(config: &ServerConfig, log: &Path) -> Child {
        let logfile = std::fs::File::create(log).unwrap();
        // taskset execs the server: the child's pid is the server's.
        let mut cmd = match &config.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, env!("CARGO_BIN_EXE_trackedge")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_trackedge")),
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("TRACKEDGE_LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_ADMIN_LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_REDIS_URL", &config.redis_url)
            .env("TRACKEDGE_REDIS_PREFIX", &config.prefix)
            .env("TRACKEDGE_CLICKHOUSE_URL", &config.clickhouse_url)
            .env("TRACKEDGE_CLICKHOUSE_DATABASE", &config.database)
            .env("TRACKEDGE_CLICKHOUSE_FLUSH_INTERVAL_MS", "100")
            .env("TRACKEDGE_CLICKHOUSE_RETRY_MAX_MS", "500")
            .env("TRACKEDGE_HTTP_SHUTDOWN_GRACE_SECS", "5")
            .env("TRACKEDGE_REDIS_CONNECT_RETRY_SECS", "1")
            .env("TRACKEDGE_ADMIN_TOKEN", TOKEN)
            .env("TRACKEDGE_SECRET", SECRET)
            .env("TRACKEDGE_SPOOL_DIR", &config.spool_dir)
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(logfile);
        for (k, v) in &config.env {
            cmd.env(k, v);
        }
        spawn_tied(&mut cmd)
    }

    /// Waits until `/readyz` says 200 (the catalog is loaded and the
    /// public listener serves).
    pub fn wait_ready(&mut self) {
        let log = self.log.clone();
        let child = self.child.as_mut().expect("server running");
        let url = format!("{}/readyz", self.admin);
        wait_for("trackedge /readyz", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "trackedge exited {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            http_get_blocking(&url).and_then(|(s, _)| (s == 200).then_some(()))
        });
    }

    /// Waits until the server has migrated its ClickHouse database.
    pub fn wait_migrated(&self) {
        let database = format!("database={}", self.config.database);
        wait_for(&format!("{} to be migrated", self.config.database), || {
            self.log_text()
                .lines()
                .any(|l| {
                    l.contains("clickhouse schema is up to date")
                        && l.split_whitespace().any(|w| w == database)
                })
                .then_some(())
        });
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server still running");
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().unwrap()
    }

    /// Kills with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The public and admin addresses of a log's `listening listen=<addr>
/// admin=<addr>` line.
fn bound_addresses(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = log.lines().find(|l| l.contains(" listening "))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))?
            .parse()
            .ok()
    };
    Some((field("listen=")?, field("admin=")?))
}

/// An async HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Calls the admin API; returns status and JSON body.
pub async fn admin(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let url = format!("{}{}", server.admin, path);
    let mut req = c
        .request(method.parse().unwrap(), url)
        .header("Authorization", format!("Bearer {TOKEN}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The value of metric `name` on `server`'s admin listener; `name` is
/// written as the exposition writes it, labels included
/// (`x_total{event="change"}`).
pub fn metric(server: &Server, name: &str) -> f64 {
    metric_if_any(server, name).unwrap_or_else(|| panic!("no metric {name}"))
}

/// Like [`metric`], `None` for a labelled series not created yet.
pub fn metric_if_any(server: &Server, name: &str) -> Option<f64> {
    let (status, body) =
        http_get_blocking(&format!("{}/metrics", server.admin)).expect("metrics answer");
    assert_eq!(status, 200);
    let value = body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))?;
    Some(value.trim().parse().expect("a metric value is a number"))
}

/// A blocking connection to the server's Redis.
pub fn redis_conn(server: &Server) -> redis::Connection {
    redis::Client::open(server.config.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Creates a partner, an offer with `url` and a link; returns the link JSON.
pub async fn seed_link(server: &Server, url: &str, code: Option<&str>) -> Value {
    let partner = json!({"name": "Partner", "kind": "affiliate"});
    seed_partner_link(server, partner, url, code).await.0
}

/// Creates the partner of create body `partner`, a CPA 5.00 offer with
/// `url` and a link between them (with vanity `code`, if given); answers
/// the link, the offer and the partner as created.
pub async fn seed_partner_link(
    server: &Server,
    partner: Value,
    url: &str,
    code: Option<&str>,
) -> (Value, Value, Value) {
    let (s, p) = admin(server, "POST", "/api/v1/partners", Some(partner)).await;
    assert_eq!(s, 201, "{p}");
    let (s, o) = admin(
        server,
        "POST",
        "/api/v1/offers",
        Some(json!({"name": "Offer", "url": url, "payout": {"model": "cpa", "amount": "5.00"}})),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    let mut body = json!({"partner_id": p["id"], "offer_id": o["id"]});
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    let (s, l) = admin(server, "POST", "/api/v1/links", Some(body)).await;
    assert_eq!(s, 201, "{l}");
    (l, o, p)
}

/// Now, in Unix seconds.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A desktop browser's user agent: clicks with it are not judged bots.
pub const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// Follows the tracking link once as a browser; answers the click id of
/// its `Location` (the offer URL's `cid` parameter).
pub async fn click(server: &Server, link: &Value) -> String {
    click_with(server, link, false).await
}

/// Like [`click`], with `HEAD` when `head` (judged a bot's click).
pub async fn click_with(server: &Server, link: &Value, head: bool) -> String {
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let c = client();
    let req = if head { c.head(&url) } else { c.get(&url) };
    let resp = req.header("user-agent", BROWSER_UA).send().await.unwrap();
    click_id_of(&resp)
}

/// The click id a redirect answered with: the `cid` parameter of its
/// `Location` (the test offers' URLs carry `cid={click_id}`).
pub fn click_id_of(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "cid")
        .map(|(_, v)| v.to_string())
        .expect("the click id in the Location")
}
