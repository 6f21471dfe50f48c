//! Two build steps:
//! 1. Embeds libtorch's library directory as an rpath, so binaries and tests run
//!    without LD_LIBRARY_PATH. torch-sys (a direct dependency, `links = "tch"`)
//!    publishes the directory to us as DEP_TCH_LIBTORCH_LIB.
//! 2. Bundles every `fixtures/**/*.json` into the library (`fixtures::bundled`).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    bundle_fixtures();
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
