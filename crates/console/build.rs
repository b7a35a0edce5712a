//! Tags the static files with a hash of their contents, so their URLs change whenever they
//! do and browsers may cache them for a year.

use std::hash::{DefaultHasher, Hasher};

fn main() {
    let mut hasher = DefaultHasher::new();
    let mut names: Vec<_> = std::fs::read_dir("static")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for path in names {
        hasher.write(path.to_string_lossy().as_bytes());
        hasher.write(&std::fs::read(&path).unwrap_or_default());
    }
    println!("cargo:rerun-if-changed=static");
    println!(
        "cargo:rustc-env=CONSOLE_ASSETS_TAG={:012x}",
        hasher.finish() >> 16
    );
}
