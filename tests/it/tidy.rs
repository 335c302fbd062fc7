//! House rules checked by code: every Rust file opens with a `//!` saying
//! what it owns, and no stub (`todo!`, `unimplemented!`) is left in `src/`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_says_what_it_owns_and_src_has_no_stubs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!("{}: no //! module doc", f.display()));
        }
        let stub = ["todo", "!("].concat();
        let unimpl = ["unimplemented", "!("].concat();
        if f.starts_with(root.join("src")) && (text.contains(&stub) || text.contains(&unimpl)) {
            problems.push(format!("{}: a stub is left", f.display()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
