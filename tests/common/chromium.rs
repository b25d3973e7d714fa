//! Debian's headless Chromium, driven from the command line: each page
//! is one `chromium --headless --dump-dom` run with a virtual time budget.
//! Virtual time stands still while a fetch is pending and runs at once
//! when the page is idle, so every request chain a page starts (and every
//! timer within the budget) has finished when the DOM is printed and the
//! browser exits: the test reads a marker the page sets, not a clock.
//!
//! Chromium comes from Debian's `chromium` package (`scripts/test.sh`
//! installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::wait_for;

/// Debian's Chromium, or a clear failure naming what to install.
pub fn chromium() -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::iter::once("/usr/bin")
        .chain(path.split(':'))
        .map(|dir| PathBuf::from(dir).join("chromium"))
        .find(|p| p.is_file())
        .expect("chromium not found: install Debian's chromium package (scripts/test.sh does)")
}

/// A headless browser profile: cookies and storage set by one page are
/// there for the next, as for a person who comes back.
pub struct Browser {
    dir: tempfile::TempDir,
    runs: u32,
    user_agent: Option<String>,
    env: Vec<(String, String)>,
    window: (u32, u32),
}

/// Kills a browser that outlived the test's patience.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// A fresh profile, Chromium's own user agent, an 800×600 window.
    pub fn new() -> Browser {
        Browser {
            dir: tempfile::tempdir().unwrap(),
            runs: 0,
            user_agent: None,
            env: Vec::new(),
            window: (800, 600),
        }
    }

    /// Announces `ua` instead of `HeadlessChrome`.
    pub fn user_agent(mut self, ua: &str) -> Browser {
        self.user_agent = Some(ua.to_string());
        self
    }

    /// Runs the browser with an environment variable (`TZ` sets its time
    /// zone).
    pub fn env(mut self, key: &str, value: &str) -> Browser {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The window (and screenshot) size in CSS pixels.
    pub fn window(mut self, width: u32, height: u32) -> Browser {
        self.window = (width, height);
        self
    }

    /// Opens `url` (following redirects), lets its scripts run, and
    /// answers the DOM it ended with.
    pub fn open(&mut self, url: &str) -> String {
        self.run(url, None)
    }

    /// Like [`Browser::open`], also saving a PNG of the window as it was
    /// when the DOM was taken.
    pub fn open_and_screenshot(&mut self, url: &str, png: &Path) -> String {
        self.run(url, Some(png))
    }

    fn run(&mut self, url: &str, png: Option<&Path>) -> String {
        self.runs += 1;
        let out = self.dir.path().join(format!("dom-{}.html", self.runs));
        let err = self.dir.path().join(format!("chromium-{}.log", self.runs));
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            self.dir.path().join("profile").display()
        ))
        .arg(format!("--window-size={},{}", self.window.0, self.window.1));
        if let Some(ua) = &self.user_agent {
            cmd.arg(format!("--user-agent={ua}"));
        }
        if let Some(png) = png {
            cmd.arg(format!("--screenshot={}", png.display()));
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .arg("--dump-dom")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("starting chromium");
        let mut running = Running(child);
        let status = wait_for(&format!("chromium to load {url}"), || {
            running.0.try_wait().unwrap()
        });
        assert!(
            status.success(),
            "chromium exited {status} on {url}: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::fs::read_to_string(&out).unwrap()
    }
}
