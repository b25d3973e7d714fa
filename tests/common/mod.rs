//! Test harness: real Redis and ClickHouse processes on free loopback
//! ports, and trackedge processes driven over HTTP.
//!
//! One Redis and one ClickHouse serve a whole test binary; each test gets
//! its own ClickHouse database and Redis key prefix, so tests run in
//! parallel without seeing each other. Child processes die with the test
//! process (PR_SET_PDEATHSIG), so nothing is left running.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The admin token every test server uses.
pub const TOKEN: &str = "test-admin-token";
/// The signing secret every test server uses.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Polls `f` every 20 ms until it returns `Some`, or panics after `limit`
/// naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Redis server.
pub struct Redis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server on `port` (0 for a free one).
    pub fn start(port: u16) -> Redis {
        Redis::start_in(port, tempfile::tempdir().unwrap())
    }

    /// Starts redis-server on `port` with its data in `dir`: a restart on
    /// the same dir loads what `save` wrote.
    pub fn start_in(port: u16, dir: tempfile::TempDir) -> Redis {
        let port = if port == 0 { free_port() } else { port };
        let child = spawn_tied(
            Command::new(find_binary("redis-server"))
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let r = Redis {
            port,
            child,
            _dir: dir,
        };
        wait_for("redis to answer", Duration::from_secs(20), || {
            r.ping().then_some(())
        });
        r
    }

    /// Snapshots the data to disk (SAVE), kills the server, and hands back
    /// its data dir for a restart.
    pub fn save_and_kill(mut self) -> (u16, tempfile::TempDir) {
        assert_eq!(self.command("SAVE"), "+OK\r\n");
        self.kill();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        (self.port, dir)
    }

    /// Sends one inline command and returns the first reply line.
    pub fn command(&self, cmd: &str) -> String {
        use std::io::{BufRead, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).unwrap();
        line
    }

    /// The URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// True when it answers PING.
    pub fn ping(&self) -> bool {
        use std::io::Write;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ClickHouse server.
pub struct ClickHouse {
    pub http_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl ClickHouse {
    /// Starts a private clickhouse-server on free ports.
    pub fn start() -> ClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let (http, tcp, inter) = (free_port(), free_port(), free_port());
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/clickhouse-config.sh"))
            .arg(dir.path())
            .args([http.to_string(), tcp.to_string(), inter.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "scripts/clickhouse-config.sh failed");
        let mut ch = ClickHouse {
            http_port: http,
            child: None,
            dir,
        };
        ch.restart();
        ch
    }

    /// (Re)starts the server process on the same ports and data, and waits
    /// until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some(spawn_tied(
            Command::new(find_binary("clickhouse-server"))
                .arg(format!(
                    "--config-file={}",
                    self.dir.path().join("config.xml").display()
                ))
                .current_dir(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        wait_for(
            "clickhouse to answer /ping",
            Duration::from_secs(60),
            || self.ping().then_some(()),
        );
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// True when /ping answers.
    pub fn ping(&self) -> bool {
        http_get_blocking(&format!("{}/ping", self.url()))
            .is_some_and(|(s, b)| s == 200 && b.starts_with("Ok."))
    }

    /// Runs `sql`, returning TSV output.
    pub fn query(&self, sql: &str) -> String {
        let (status, body) = http_post_blocking(&format!("{}/", self.url()), sql)
            .unwrap_or_else(|| panic!("clickhouse unreachable for {sql}"));
        assert_eq!(status, 200, "query {sql} failed: {body}");
        body
    }

    /// Runs `sql` expecting one number.
    pub fn count(&self, sql: &str) -> u64 {
        self.query(sql)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a number from {sql}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of ClickHouse that can swallow the answer to the
/// next INSERTs: ClickHouse stores the rows, the client sees its connection
/// drop, as when a response is lost on the network.
pub struct DroppingProxy {
    pub port: u16,
    /// INSERT answers still to swallow.
    pub drops: std::sync::Arc<AtomicU32>,
    /// INSERT answers swallowed so far.
    pub dropped: std::sync::Arc<AtomicU32>,
}

impl DroppingProxy {
    /// Proxies 127.0.0.1:{port} to `upstream_port`.
    pub fn start(upstream_port: u16) -> DroppingProxy {
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drops = Arc::new(AtomicU32::new(0));
        let dropped = Arc::new(AtomicU32::new(0));
        let (d, dd) = (drops.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", upstream_port))
                else {
                    continue;
                };
                let (d, dd) = (d.clone(), dd.clone());
                std::thread::spawn(move || proxy_connection(client, upstream, d, dd));
            }
        });
        DroppingProxy {
            port,
            drops,
            dropped,
        }
    }

    /// The URL to give trackedge.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn proxy_connection(
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
    drops: std::sync::Arc<AtomicU32>,
    dropped: std::sync::Arc<AtomicU32>,
) {
    use std::io::Write;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let poisoned = Arc::new(AtomicBool::new(false));
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let p = poisoned.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            // The crate names the statement in the URL: `?...query=INSERT+INTO`.
            let is_insert = chunk.windows(12).any(|w| w == b"query=INSERT");
            if is_insert
                && drops
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            {
                p.store(true, Ordering::SeqCst);
            }
            if u_write.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if poisoned.load(Ordering::SeqCst) {
            // ClickHouse sends the headers when the INSERT starts and the
            // last chunk when it has stored the rows: swallow everything up
            // to that last chunk, then cut the client off.
            let mut answer = buf[..n].to_vec();
            while !answer.ends_with(b"0\r\n\r\n") {
                match u_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(m) => answer.extend_from_slice(&buf[..m]),
                }
            }
            dropped.fetch_add(1, Ordering::SeqCst);
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = u_read.shutdown(std::net::Shutdown::Both);
            return;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Both);
}

/// A minimal blocking HTTP/1.0 client for harness checks (no runtime).
fn http_blocking(method: &str, url: &str, body: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Blocking GET.
pub fn http_get_blocking(url: &str) -> Option<(u16, String)> {
    http_blocking("GET", url, "")
}

/// Blocking POST.
pub fn http_post_blocking(url: &str, body: &str) -> Option<(u16, String)> {
    http_blocking("POST", url, body)
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
        on_keeper_thread(|| Services {
            redis: Redis::start(0),
            clickhouse: ClickHouse::start(),
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
    pub spool_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl ServerConfig {
    /// A fresh database, prefix and spool on the shared services.
    pub fn new(tag: &str) -> ServerConfig {
        let s = services();
        let name = unique_name(tag);
        ServerConfig {
            redis_url: s.redis.url(),
            clickhouse_url: s.clickhouse.url(),
            database: name.clone(),
            prefix: format!("{name}:"),
            spool_dir: std::env::temp_dir().join(format!("trackedge-spool-{name}")),
            env: Vec::new(),
        }
    }

    /// The same settings with a spool of its own, for a second node.
    pub fn other_node(&self) -> ServerConfig {
        let mut c = self.clone();
        c.spool_dir = std::env::temp_dir().join(format!("trackedge-spool-{}", unique_name("node")));
        c
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
    pub public: String,
    pub admin: String,
    pub config: ServerConfig,
    pub log: PathBuf,
}

impl Server {
    /// Starts `trackedge serve` and waits until `/readyz` says 200.
    pub fn start(config: ServerConfig) -> Server {
        let mut s = Server::spawn(config);
        s.wait_ready();
        s
    }

    /// Starts `trackedge serve` without waiting.
    pub fn spawn(config: ServerConfig) -> Server {
        let (pp, ap) = (free_port(), free_port());
        let log = config.spool_dir.with_extension(format!("{pp}.log"));
        let logfile = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trackedge"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("TRACKEDGE_LISTEN", format!("127.0.0.1:{pp}"))
            .env("TRACKEDGE_ADMIN_LISTEN", format!("127.0.0.1:{ap}"))
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
        let child = spawn_tied(&mut cmd);
        Server {
            child: Some(child),
            public: format!("http://127.0.0.1:{pp}"),
            admin: format!("http://127.0.0.1:{ap}"),
            config,
            log,
        }
    }

    /// Waits for `/readyz` = 200.
    pub fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.admin);
        let log = self.log.clone();
        let child = self.child.as_mut().expect("server running");
        wait_for("trackedge /readyz", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "trackedge exited {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            http_get_blocking(&url).and_then(|(s, _)| (s == 200).then_some(()))
        });
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server still running");
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

/// An async HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
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

/// The value of metric `name` (without labels) on `server`'s admin
/// listener.
pub fn metric(server: &Server, name: &str) -> f64 {
    let (status, body) =
        http_get_blocking(&format!("{}/metrics", server.admin)).expect("metrics answer");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .trim()
        .parse()
        .unwrap()
}

/// Creates a partner, an offer with `url` and a link; returns the link JSON.
pub async fn seed_link(server: &Server, url: &str, code: Option<&str>) -> Value {
    let (s, p) = admin(
        server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "Partner", "kind": "affiliate"})),
    )
    .await;
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
    l
}
