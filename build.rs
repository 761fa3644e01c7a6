//! Records the source revision for `testsigma_exporter_build_info`: `$TESTSIGMA_EXPORTER_REVISION`
//! if set (e.g. by an image build without .git), else `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TESTSIGMA_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    // Watch only what exists: a missing path makes cargo rebuild every time (image builds
    // and other copies of the source have no .git).
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let revision = std::env::var("TESTSIGMA_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TESTSIGMA_EXPORTER_REVISION={revision}");
}
