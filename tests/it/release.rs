//! The release packages of `scripts/release.sh`, in the directory `DSR_RELEASE_DIR` names: every
//! file is the one `SHA256SUMS` and `manifest.json` describe, and each zip's `bootstrap`,
//! unpacked and started under the Lambda Runtime API emulator, answers the four invocations of a
//! PostgreSQL rotation, after which the new password logs in and the old one does not. The doctor
//! executable answers `--version`.
//!
//! Without `DSR_RELEASE_DIR` the test says so and passes: the packages are built by the release
//! command, not by `cargo test` (the guide's CI run, scripts/guide_check.sh, sets it). A package
//! for another architecture than this machine's runs under QEMU's user-mode emulator
//! (`qemu-aarch64` with the cross glibc in `/usr/aarch64-linux-gnu`, Debian's `qemu-user` and
//! `libc6-arm64-cross`) where those are installed; elsewhere it is checked but not run, and the
//! test says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::scenario::STEPS;
use crate::support::*;

/// A line on the test's stderr, past the harness's capture (as `support::report` writes).
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// How to start another architecture's `bootstrap` here, if this machine can: QEMU's user-mode
/// emulator with that architecture's glibc.
fn emulated(architecture: &str, bootstrap: &Path) -> Option<std::process::Command> {
    let (qemu, sysroot, loader) = match architecture {
        "arm64" => (
            "qemu-aarch64",
            "/usr/aarch64-linux-gnu",
            "lib/ld-linux-aarch64.so.1",
        ),
        "x86_64" => (
            "qemu-x86_64",
            "/usr/x86_64-linux-gnu",
            "lib/ld-linux-x86-64.so.2",
        ),
        _ => return None,
    };
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(qemu).is_file()))
        .unwrap_or(false);
    if !found || !Path::new(sysroot).join(loader).exists() {
        return None;
    }
    let mut command = std::process::Command::new(qemu);
    command.arg("-L").arg(sysroot).arg(bootstrap);
    Some(command)
}

/// This machine's architecture, in Lambda's words.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `SHA256SUMS`: file name to digest.
fn sums(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
    text.lines()
        .map(|line| {
            let (digest, name) = line.split_once("  ").expect("`<digest>  <file>` lines");
            (name.to_owned(), digest.to_owned())
        })
        .collect()
}

/// Unpacks `zip` into a fresh directory and returns its `bootstrap`.
fn unpack(zip: &Path, into: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("unzip")
        .args(["-q", "-o"])
        .arg(zip)
        .arg("-d")
        .arg(into)
        .status()
        .expect("unzip (scripts/release.sh installs it)");
    assert!(status.success(), "unzip {}", zip.display());
    let bootstrap = into.join("bootstrap");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&bootstrap)
            .expect("bootstrap")
            .permissions(),
    );
    assert!(
        mode & 0o111 != 0,
        "{}: bootstrap is not executable",
        zip.display()
    );
    bootstrap
}

/// One rotation of a fresh PostgreSQL secret through the function `command` starts, under the
/// Runtime API emulator.
async fn rotates(stack: &Stack, command: std::process::Command, architecture: &str) {
    let client = sm_client().await;
    let server = Server::Postgres;
    let name = unique("release");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let arn = create_secret(&client, &stack.secret(server, &name, &password)).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;

    let process =
        FunctionProcess::spawn_command(stack, command, &format!("release-{architecture}"), &[])
            .await;
    process.api.ready(Duration::from_secs(60)).await;
    for step in STEPS {
        let event = json!({"Step": step, "SecretId": arn, "ClientRequestToken": token});
        let outcome = process
            .api
            .invoke_json(&event, Duration::from_secs(60))
            .await;
        assert!(
            matches!(outcome, Outcome::Response(ref body) if body.as_slice() == b"null"),
            "{architecture} {step}: {outcome:?}\n{}",
            process.logs()
        );
    }
    assert_eq!(
        version_with(&client, &arn, "AWSCURRENT").await.as_deref(),
        Some(token.as_str())
    );
    let new_password = current_password(&client, &arn).await;
    stack.login(server, &name, &new_password).await.unwrap();
    assert_eq!(
        stack.login(server, &name, &password).await,
        Err(server.rejected().to_owned())
    );
    assert_no_password_in(&process.logs(), "the release bootstrap's log");
    drop(process);
    user.drop(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_package_answers_the_runtime_api() {
    let Some(dir) = std::env::var_os("DSR_RELEASE_DIR").map(PathBuf::from) else {
        say(
            "skipping the release packages: DSR_RELEASE_DIR is not set (scripts/release.sh builds them)",
        );
        return;
    };
    let stack = require_stack!();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json is JSON");
    let sums = sums(&dir);
    let artifacts = manifest["artifacts"].as_array().expect("artifacts");
    let mut ran = Vec::new();
    for artifact in artifacts {
        let file = artifact["file"].as_str().expect("file");
        let path = dir.join(file);
        let digest = sha256_hex(&path);
        assert_eq!(sums.get(file), Some(&digest), "{file}: SHA256SUMS");
        assert_eq!(
            artifact["sha256"].as_str(),
            Some(digest.as_str()),
            "{file}: manifest"
        );
        let architecture = artifact["architecture"].as_str().expect("architecture");
        match artifact["kind"].as_str() {
            Some("lambda-zip") => {
                let unpacked = Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("release-{architecture}-{}", std::process::id()));
                let bootstrap = unpack(&path, &unpacked);
                assert_eq!(
                    artifact["bootstrap"]["sha256"].as_str(),
                    Some(sha256_hex(&bootstrap).as_str()),
                    "{file}: the manifest's bootstrap"
                );
                assert_eq!(artifact["bootstrap"]["glibc_ok"], json!(true), "{file}");
                if architecture == host_architecture() {
                    rotates(stack, std::process::Command::new(&bootstrap), architecture).await;
                    ran.push(file.to_owned());
                } else if let Some(command) = emulated(architecture, &bootstrap) {
                    rotates(stack, command, architecture).await;
                    ran.push(format!("{file} (under qemu)"));
                } else {
                    say(&format!(
                        "{file}: checked, not run: this machine is {} and has no {architecture} emulator (qemu-user and the cross glibc)",
                        host_architecture()
                    ));
                }
            }
            Some("doctor") if architecture == host_architecture() => {
                let output = std::process::Command::new(&path)
                    .arg("--version")
                    .output()
                    .expect("running the doctor executable");
                let expected = format!(
                    "db-secret-rotator {}\n",
                    manifest["version"].as_str().unwrap()
                );
                assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{file}");
            }
            Some("doctor") => say(&format!("{file}: checked, not run on this machine")),
            other => panic!("{file}: unknown kind {other:?}"),
        }
    }
    assert!(
        !ran.is_empty(),
        "no package of this machine's architecture in {}",
        dir.display()
    );
    say(&format!(
        "release packages that rotated a secret: {}",
        ran.join(", ")
    ));
}
