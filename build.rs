//! Three build steps:
//! 1. Embeds libtorch's library directory as an rpath, so binaries and tests run
//!    without LD_LIBRARY_PATH. torch-sys (a direct dependency, `links = "tch"`)
//!    publishes the directory to us as DEP_TCH_LIBTORCH_LIB.
//! 2. Reads the versions a fixture's `producer` names — libtorch's, from the
//!    installation in that directory, and tch's, from Cargo.lock — so they are
//!    what was built against, not what a comment once said.
//! 3. Bundles every `fixtures/**/*.json` into the library (`fixtures::bundled`).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        let libtorch = libtorch_version(Path::new(&dir)).unwrap_or_else(|| "unknown".to_string());
        println!("cargo:rustc-env=CE_PARITY_LIBTORCH_VERSION={libtorch}");
    }
    let tch = locked_version("tch").unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CE_PARITY_TCH_VERSION={tch}");
    bundle_fixtures();
}

/// libtorch's version without its build tag ("2.13.0" of "2.13.0+cu130"):
/// the Python wheel keeps it in `torch/version.py`, the C++ archive in
/// `build-version`, each beside the `lib` folder.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    let wheel = root.join("version.py");
    let archive = root.join("build-version");
    println!("cargo:rerun-if-changed={}", wheel.display());
    println!("cargo:rerun-if-changed={}", archive.display());
    let full = match std::fs::read_to_string(&wheel) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))?
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string(),
        Err(_) => std::fs::read_to_string(&archive).ok()?.trim().to_string(),
    };
    Some(full.split('+').next()?.to_string())
}

/// The version of package `name` in Cargo.lock (absent when a dependent
/// crate builds us from the registry without our lock file).
fn locked_version(name: &str) -> Option<String> {
    let lock = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines.next()?.strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_string());
        }
    }
    None
}

fn bundle_fixtures() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let fixtures = root.join("fixtures");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    let mut files = Vec::new();
    collect(&fixtures, &mut files);
    files.sort();
    let mut code = String::from("/// (path relative to the crate, contents)\nstatic BUNDLED: &[(&str, &str)] = &[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&root).expect("under the crate").display().to_string();
        code.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled_fixtures.rs");
    std::fs::write(out, code).expect("write bundled_fixtures.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
}
