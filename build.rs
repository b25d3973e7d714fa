//! Bundles the admin dashboard's third-party browser code into the binary.
//!
//! The dashboard draws its charts with uPlot, pinned (with its integrity
//! hash) in `web/package-lock.json`. When `web/node_modules` lacks that
//! exact version, this runs `npm ci` there: the only network a build
//! needs, and only once per checkout. The files the dashboard serves are
//! then copied into `OUT_DIR`, where `src/http/bundle.rs` includes them
//! for the dashboard and the partner portal, so the running service
//! fetches nothing from anywhere and works offline.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The package the dashboard bundles.
const PACKAGE: &str = "uplot";

/// `(file in the package, name in OUT_DIR)`: the script, its stylesheet,
/// and its licence, which the dashboard serves beside them.
const FILES: [(&str, &str); 3] = [
    ("dist/uPlot.iife.min.js", "uplot.min.js"),
    ("dist/uPlot.min.css", "uplot.min.css"),
    ("LICENSE", "uplot-LICENSE.txt"),
];

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let web = root.join("web");
    let lock = web.join("package-lock.json");
    println!("cargo:rerun-if-changed=web/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-env-changed=NPM");

    let lock_text = read(&lock);
    let wanted = locked_version(&lock_text, PACKAGE)
        .unwrap_or_else(|| panic!("web/package-lock.json pins no version of {PACKAGE}"));
    let package = web.join("node_modules").join(PACKAGE);
    if installed_version(&package).as_deref() != Some(wanted.as_str()) {
        npm_ci(&web);
        let got = installed_version(&package);
        assert_eq!(
            got.as_deref(),
            Some(wanted.as_str()),
            "npm ci left {PACKAGE} {got:?} in web/node_modules, the lock pins {wanted}"
        );
    }

    for (from, to) in FILES {
        let from = package.join(from);
        println!("cargo:rerun-if-changed={}", from.display());
        std::fs::copy(&from, out.join(to))
            .unwrap_or_else(|e| panic!("copying {} into OUT_DIR: {e}", from.display()));
    }
}

/// The version in `node_modules/<name>/package.json`, if installed.
fn installed_version(package: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    first_version(&text)
}

/// The version the lock file gives `node_modules/<name>`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let key = format!("\"node_modules/{name}\"");
    first_version(&lock[lock.find(&key)? + key.len()..])
}

/// The value of the first `"version": "..."` in `text`: enough for the
/// two npm-written files read here, without a JSON parser in the build.
fn first_version(text: &str) -> Option<String> {
    let rest = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// `npm ci` in `web`: installs exactly what the lock pins, checking each
/// package's integrity hash, and runs no package's install scripts.
fn npm_ci(web: &Path) {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_string());
    let status = Command::new(&npm)
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(web)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "web/node_modules lacks the dashboard's {PACKAGE} and {npm} could not be run ({e}): \
                 install Node.js and npm (scripts/test.sh does), then build again"
            )
        });
    assert!(
        status.success(),
        "`{npm} ci` in web/ failed ({status}): the npm registry must be reachable once to \
         fetch the dashboard's {PACKAGE}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
