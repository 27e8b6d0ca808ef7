//! The verifier must build on a regulator's machine without libtss2: with
//! `--no-default-features` the crate compiles (quote verification and
//! enrollment alike) and tss-esapi is not in its dependency tree.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn cargo(args: &[&str]) -> std::process::Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo")
}

#[test]
fn the_verifier_builds_without_the_tpm_libraries() {
    let tree = cargo(&[
        "tree",
        "-p",
        "attest",
        "--no-default-features",
        "-e",
        "normal",
    ]);
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("ring"), "{tree}");
    // Enrollment (EK chains, MakeCredential) is part of the verifier too.
    for crate_name in ["x509-parser v", "rsa v", "aes v", "cfb-mode v"] {
        assert!(tree.contains(crate_name), "{crate_name} missing:\n{tree}");
    }
    assert!(
        !tree.contains("tss-esapi"),
        "tss-esapi in the verifier's tree:\n{tree}"
    );

    let check = cargo(&["check", "-p", "attest", "--no-default-features", "--lib"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
