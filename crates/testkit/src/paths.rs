//! Where Cargo put what a test needs on disk: the directory for its files and the function's
//! binary. Cargo tells an integration test (`CARGO_TARGET_TMPDIR`, `CARGO_BIN_EXE_<name>`) at
//! compile time, and tells a library nothing; the test binary registers both before any fixture
//! runs (`tests/it/support` does it as it hands out the stack).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Paths {
    tmp: PathBuf,
    function_binary: PathBuf,
}

static PATHS: OnceLock<Paths> = OnceLock::new();

/// Registers the test binary's temporary directory and the function's binary; the first call
/// wins, later ones are ignored.
pub fn register(tmp: impl Into<PathBuf>, function_binary: impl Into<PathBuf>) {
    PATHS.get_or_init(|| Paths {
        tmp: tmp.into(),
        function_binary: function_binary.into(),
    });
}

fn paths() -> &'static Paths {
    PATHS.get().expect(
        "testkit::paths::register was not called: the test binary registers \
         CARGO_TARGET_TMPDIR and CARGO_BIN_EXE_db-secret-rotator first",
    )
}

/// The directory for the test's files (`target/tmp`).
pub fn tmp() -> &'static Path {
    &paths().tmp
}

/// The built function (`target/debug/db-secret-rotator`).
pub fn function_binary() -> &'static Path {
    &paths().function_binary
}
