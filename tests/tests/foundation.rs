//! End to end: init, status, serve, PCR policy enforcement and recovery,
//! against the real binary and a real swtpm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::appliance::{s, snapshot, zonevault, zonevault_ok, Appliance};

/// Extends a PCR of the appliance's TPM with tpm2-tools, as a platform
/// change (new firmware, new boot loader) would.
fn extend_pcr(app: &Appliance, pcr: u8) {
    let digest = "ab".repeat(32);
    let out = std::process::Command::new("tpm2_pcrextend")
        .arg(format!("{pcr}:sha256={digest}"))
        .env("TPM2TOOLS_TCTI", app.tpm.tcti())
        .env("TSS2_LOG", "all+none")
        .output()
        .expect("run tpm2_pcrextend");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn recover(app: &Appliance, shares: &[usize], passphrases: &[&str]) -> std::process::Output {
    std::fs::write(app.path("recover-pass.txt"), passphrases.join("\n")).unwrap();
    let data = app.data_dir();
    let pass = app.path("recover-pass.txt");
    let share_paths: Vec<String> = shares
        .iter()
        .map(|i| s(&app.path(&format!("recovery/share-{i}.json"))).to_owned())
        .collect();
    let mut args = vec!["recover", "--data-dir", s(&data), "--tpm"];
    let tcti = app.tpm.tcti();
    args.push(&tcti);
    for p in &share_paths {
        args.extend(["--share", p]);
    }
    args.extend(["--recovery-passphrases", s(&pass)]);
    zonevault(&args)
}

#[test]
fn init_status_serve_then_a_changed_pcr_is_named_and_nothing_changes() {
    let mut app = Appliance::new();
    let out = app.init("0,2,4,7");
    assert!(
        out.contains("sha256:0,2,4,7"),
        "init prints the policy: {out}"
    );
    for i in 1..=3 {
        assert!(app.path(&format!("recovery/share-{i}.json")).is_file());
    }

    let data = app.data_dir();
    let status = zonevault_ok(&["status", "--data-dir", s(&data), "--tpm", &app.tpm.tcti()]);
    assert!(status.contains("unsealable"), "{status}");
    assert!(status.contains("zones:         0"), "{status}");

    app.start_server().expect("server starts");
    let (code, body) = app.curl("operator", "GET", "/v1/health", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"sealed\""), "{body}");
    app.stop_server(false);

    let before = snapshot(&data);
    extend_pcr(&app, 7);
    let out = app
        .start_server()
        .expect_err("serve must refuse after PCR 7 changed");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("PCR 7 changed"), "names the PCR: {err}");
    assert!(err.contains("zonevault recover"), "says what to do: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(before, snapshot(&data), "serve changed the data dir");

    let status = zonevault(&["status", "--data-dir", s(&data), "--tpm", &app.tpm.tcti()]);
    assert!(!status.status.success());
    assert!(stderr(&status).contains("PCR 7 changed"));
}

#[test]
fn init_refuses_a_non_empty_data_dir_and_bad_arguments() {
    let app = Appliance::new();
    std::fs::create_dir_all(app.data_dir()).unwrap();
    std::fs::write(app.data_dir().join("keep.txt"), "precious").unwrap();
    let args = app.init_args("0,7");
    let out = zonevault(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("non-empty"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(app.data_dir().join("keep.txt")).unwrap(),
        b"precious"
    );
    assert!(
        !app.path("recovery").exists(),
        "no shares written on refusal"
    );

    std::fs::remove_dir_all(app.data_dir()).unwrap();
    let out = zonevault(
        &app.init_args("0,99")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("99"),
        "names the bad PCR: {}",
        stderr(&out)
    );
    assert!(!app.data_dir().exists() || snapshot(&app.data_dir()).is_empty());

    let mut args = app.init_args("0,7");
    let k = args
        .iter()
        .position(|a| a == "--recovery-threshold")
        .unwrap();
    args[k + 1] = "4".into();
    let out = zonevault(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("threshold"), "{}", stderr(&out));
}

#[test]
fn recovery_after_a_pcr_change_needs_k_shares_and_right_passphrases() {
    let mut app = Appliance::new();
    app.init("0,7,16");
    extend_pcr(&app, 16);
    let data = app.data_dir();
    let before = snapshot(&data);

    let out = recover(&app, &[2], &[e2e::appliance::PASSPHRASES[1]]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("2 shares are needed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, snapshot(&data), "k-1 shares changed the data dir");

    let out = recover(
        &app,
        &[1, 3],
        &[e2e::appliance::PASSPHRASES[0], "wrong-passphrase!"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("share 3"),
        "names the share: {}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("wrong-passphrase!"));
    assert_eq!(
        before,
        snapshot(&data),
        "a wrong passphrase changed the data dir"
    );

    let out = recover(
        &app,
        &[1, 3],
        &[
            e2e::appliance::PASSPHRASES[0],
            e2e::appliance::PASSPHRASES[2],
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    app.start_server().expect("serves after recovery");
    let (code, _) = app.curl("regulator", "GET", "/v1/health", None);
    assert_eq!(code, 200);
}

#[test]
fn recovery_onto_a_replaced_tpm() {
    let mut app = Appliance::new();
    app.init("0,7");
    app.tpm.stop();
    app.tpm = e2e::Swtpm::start(&app.path("new-tpm-state"));
    let data = app.data_dir();
    let status = zonevault(&["status", "--data-dir", s(&data), "--tpm", &app.tpm.tcti()]);
    assert!(
        !status.status.success(),
        "a new TPM cannot unseal the old blob"
    );

    let out = recover(&app, &[2, 3], &e2e::appliance::PASSPHRASES[1..]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = zonevault_ok(&["status", "--data-dir", s(&data), "--tpm", &app.tpm.tcti()]);
    assert!(status.contains("unsealable"), "{status}");
    app.start_server().expect("serves on the new TPM");
}

/// The binary links SQLCipher and its OpenSSL statically: the only shared
/// libraries are libc's, libgcc's, tpm2-tss's and the libcrypto tpm2-tss
/// itself needs. (init and status above run TPM sealing and SQLCipher in one
/// process, so the two OpenSSLs coexist.)
#[test]
fn binary_links_only_libc_tss2_and_their_libcrypto() {
    let bin = e2e::appliance::zonevault_bin();
    let out = std::process::Command::new("ldd")
        .arg(&bin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let allowed = [
        "linux-vdso",
        "libc.so",
        "libm.so",
        "libgcc_s.so",
        "ld-linux",
        "libdl.so",
        "libpthread.so",
        "librt.so",
        "libtss2-",
        "libcrypto.so",
    ];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            allowed
                .iter()
                .any(|a| name.starts_with(a) || name.contains(&format!("/{a}"))),
            "unexpected shared library {name}:\n{text}"
        );
    }
    assert!(text.contains("libtss2-esys"), "{text}");
    assert!(!text.contains("sqlite") && !text.contains("sqlcipher") && !text.contains("libssl"));
}
