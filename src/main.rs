//! The `testsigma-exporter` binary: parse the command line, set up logging, run the library,
//! report an error in one place and exit with its code (2 for configuration, 1 at run time).

use std::process::ExitCode;

use clap::Parser;
use testsigma_exporter::{config, init_logging, server, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version: printed to stdout, exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return config_error(&config::usage_error(&e)),
    };
    init_logging(cli.log_level, cli.log_format);
    let settings = match cli.into_settings(std::env::var("TESTSIGMA_API_KEY").ok()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("testsigma-exporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if settings.once {
            return match testsigma_exporter::once(settings).await {
                Ok((ok, exposition)) => {
                    use std::io::Write;
                    let printed = std::io::stdout().write_all(&exposition);
                    if ok && printed.is_ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => runtime_error(&e),
            };
        }
        let listener = match server::bind(&settings.listen_address).await {
            Ok(listener) => listener,
            Err(e) => return config_error(&e),
        };
        match testsigma_exporter::run(settings, listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => runtime_error(&e),
        }
    })
}

fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("testsigma-exporter: {e}");
    ExitCode::from(2)
}

fn runtime_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("testsigma-exporter: {e:#}");
    ExitCode::FAILURE
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the exporter");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
