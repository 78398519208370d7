//! `has_fixtures` when ../shared/fixtures (or EVENTHUBS_FIXTURES) holds Azure's own Capture
//! files: the tests that read them are marked ignored otherwise, so that a clone without
//! them reports them as skipped instead of passing having checked nothing. (CI, where their
//! absence is an error, fails in `fixtures_are_present_in_ci`.)

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_fixtures)");
    println!("cargo::rerun-if-env-changed=EVENTHUBS_FIXTURES");
    let dir = std::env::var_os("EVENTHUBS_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
        });
    println!("cargo::rerun-if-changed={}", dir.display());
    if dir.join("capture").is_dir() {
        println!("cargo::rustc-cfg=has_fixtures");
    }
}
