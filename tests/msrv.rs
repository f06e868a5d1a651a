//! The `rust-version` in Cargo.toml is what the dependency tree needs: no
//! dependency that a build of this crate (any feature, Linux) compiles
//! declares a newer one. No older toolchain can be installed here, so the
//! declared versions are read from `cargo metadata`, asked for every
//! optional feature, so that every optional dependency counts.

use std::collections::{HashMap, HashSet};
use std::process::Command;

use serde_json::Value;

/// `"1.85.0"` -> `(1, 85, 0)`.
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn rust_version_covers_every_dependency() {
    let ours = env!("CARGO_PKG_RUST_VERSION");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--features",
            "cli,log,tracing,async,bincode",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let packages: HashMap<&str, &Value> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: HashMap<&str, &Value> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Everything a build compiles: normal and build dependencies, from the
    // root down (not dev-dependencies: they build tests, not the crate).
    let root = m["resolve"]["root"].as_str().unwrap();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let built = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if built {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let newest = seen
        .iter()
        .filter(|&&id| id != root)
        .filter_map(|id| {
            let p = packages[id];
            let rv = p["rust_version"].as_str()?;
            Some((
                version(rv),
                format!("{} {} needs {rv}", p["name"], p["version"]),
            ))
        })
        .max()
        .expect("some dependency declares a rust-version");
    assert!(
        version(ours) >= newest.0,
        "Cargo.toml's rust-version is {ours}, but {}: raise it (and the README's)",
        newest.1
    );
    assert_eq!(
        version(ours),
        newest.0,
        "rust-version {ours} is newer than any dependency needs ({}): lower it to what the \
         tree needs, or say in Cargo.toml why",
        newest.1
    );
    let readme = include_str!("../README.md");
    let major_minor = {
        let (a, b, _) = version(ours);
        format!("{a}.{b}")
    };
    assert!(
        readme.contains(&format!("({major_minor} or newer")),
        "the README's toolchain line does not say {major_minor}"
    );
}

/// The files README.md links to ship in the package (so the links work on
/// the registry), and the manifest points at the documentation.
#[test]
fn readme_links_ship_in_the_package() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let linked: HashSet<&str> = readme
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or(target))
        .filter(|target| !target.is_empty() && !target.contains("://"))
        .collect();
    assert!(
        linked.iter().any(|l| l.starts_with("docs/")),
        "README.md links into docs/: {linked:?}"
    );
    let out = Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(root)
        .output()
        .expect("running cargo package --list");
    assert!(
        out.status.success(),
        "cargo package --list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let files: HashSet<&str> = listed.lines().collect();
    for l in &linked {
        assert!(
            files.contains(l),
            "README.md links to {l}, which the package leaves out"
        );
    }
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("documentation = \"https://docs.rs/shmpsc\""),
        "Cargo.toml names the documentation"
    );
}
