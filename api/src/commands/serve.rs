//! `zonevault serve`: unseal the master key, open the catalog and the
//! ledger (verifying it against its last signed checkpoint), and serve the
//! mTLS API until SIGTERM or SIGINT. SIGHUP reloads the CRL.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use vault::ledger::LedgerHmac;
use zeroize::Zeroizing;

use crate::app::{self, AppState};
use crate::cli::ServeArgs;
use crate::commands::unlock;
use crate::config::Config;
use crate::tls::{TlsFiles, TlsReloader};

/// Runs the server.
pub fn run(args: ServeArgs) -> Result<()> {
    init_logging();
    // No core dumps (the master key is in memory); memory locked when the
    // measured launcher asks for it.
    let locked = firmware::harden::in_server().context("cannot harden the server process")?;
    tracing::info!(memory_locked = locked, "core dumps disabled");
    let config = Config::load(&args.config)?;
    let sealed = unlock::open(&config.data_dir)?;
    let mut tpm = unlock::tpm(&config.tpm)?;
    let started = std::time::Instant::now();
    let master = unlock::unseal(&mut tpm, &sealed)?;
    let unseal_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(unseal_ms = %format_args!("{unseal_ms:.1}"), "master key unsealed");
    let attestor =
        app::attestation::Attestor::open(tpm, &sealed.datadir, &sealed.sealed.selection)?;
    let catalog = vault::catalog::open_catalog(&sealed.datadir, &master.catalog_root())
        .context("cannot open the catalog")?;
    let appliance_id = catalog.appliance_id()?;
    let lifecycle = lifecycle(&master, &appliance_id)?;
    let ledger = unlock::open_ledger(&sealed.datadir, &master, &appliance_id)?;
    let tls = TlsReloader::new(tls_files(&config)).context("cannot load the TLS material")?;
    let ledger_size = ledger.size();
    let state = Arc::new(AppState {
        ledger: Arc::new(ledger),
        catalog: Mutex::new(catalog),
        hmac: LedgerHmac::new(Zeroizing::new(*master.ledger_hmac_key().hmac_key_bytes())),
        trust_domain: config.trust_domain.clone(),
        appliance_id,
        handshakes: tls.handshake_stats(),
        metrics: app::metrics::Metrics::default(),
        zones: app::zones::ZoneSettings {
            datadir: sealed.datadir.clone(),
            bureau: config.bureau.clone(),
            max_import_bytes: config.max_import_bytes,
            imports: app::import_stream::ImportsInFlight::default(),
        },
        // Only the zone wrapping key is kept (see `app::keyring`).
        keys: app::keyring::KeyRing::new(&master),
        lifecycle,
        attest: attestor,
        quality_sla: config.quality_sla,
        monitoring: app::alerts::Monitoring::new(config.monitoring.clone(), ledger_size),
    });
    drop(master);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, tls, state))
}

async fn serve(config: Config, tls: TlsReloader, state: Arc<AppState>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tls.spawn_sighup_reload()
        .context("cannot install the SIGHUP handler")?;
    unlock::record_event(
        &state.ledger,
        "appliance.serve",
        serde_json::json!({ "listen": config.listen.to_string() }),
    )?;
    tracing::info!(listen = %config.listen, "zonevault serving mutual TLS");
    app::destructions::spawn_retention_sweep(state.clone());
    app::alerts::spawn_monitor(state.clone());
    let app = app::app(state.clone());
    crate::server::serve(listener, tls, app, shutdown_signal())
        .await
        .context("the server failed")?;
    let _ = state.ledger.checkpoint();
    tracing::info!("zonevault stopped");
    Ok(())
}

/// The certificate signer (the ledger's key under the ledger origin) and
/// the retention sweep period: `ZONEVAULT_RETENTION_INTERVAL` seconds,
/// 60 by default.
fn lifecycle(
    master: &vault::keys::MasterKey,
    appliance_id: &str,
) -> Result<app::destructions::Lifecycle> {
    let seed = Zeroizing::new(*master.ledger_signing_seed().ed25519_seed_bytes());
    let signer =
        vault::lifecycle::CertificateSigner::new(&format!("zonevault/{appliance_id}"), &seed)
            .context("cannot build the certificate signer")?;
    let retention_interval = match std::env::var("ZONEVAULT_RETENTION_INTERVAL") {
        Ok(v) => std::time::Duration::from_secs(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .context("ZONEVAULT_RETENTION_INTERVAL must be a positive number of seconds")?,
        ),
        Err(_) => app::destructions::DEFAULT_RETENTION_INTERVAL,
    };
    Ok(app::destructions::Lifecycle {
        signer,
        retention_interval,
    })
}

fn tls_files(config: &Config) -> TlsFiles {
    TlsFiles {
        cert_chain: config.tls.cert.clone(),
        key: config.tls.key.clone(),
        client_ca: config.tls.client_ca.clone(),
        crl: config.tls.crl.clone(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Logs to stderr, best effort: when stderr cannot be written (its disk
/// is full, its reader is gone) events are dropped. tracing-subscriber
/// would otherwise report each failed write with `eprintln!`, which panics
/// when stderr fails, taking down the request or connection that logged.
/// What must not be lost is in the ledger, not the log.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZONEVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}
