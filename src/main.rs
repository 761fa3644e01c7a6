//! The `testsigma-exporter` binary: parse the command line, set up logging, run the library,
//! report an error in one place and exit with its code (2 for configuration, 1 at run time).

use std::process::ExitCode;

use clap::Parser;
use testsigma_exporter::{config, init_logging, server, Cli, ConfigError};

fn main() -> ExitCode {
    fixed_mmap_threshold();
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
    // A single poll is one request after another: on one thread its tasks hand work to each
    // other without waking a second one for every response.
    let mut builder = if settings.once {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("testsigma-exporter: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
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
                Err(e) => failure(&e),
            };
        }
        let listener = match server::bind(&settings.listen_address).await {
            Ok(listener) => listener,
            Err(e) => return config_error(&e),
        };
        match testsigma_exporter::run(settings, listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failure(&e),
        }
    });
    // A reload of the web configuration stuck on a hung file system must not hold up the
    // exit: blocking tasks still running are left behind.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Makes glibc serve every block of 1 MiB or more with its own mapping, returned to the
/// system when freed. By default glibc raises that threshold to the size of the largest
/// mapped block freed so far (up to 32 MiB): once a poll has freed its id table (about 20 MiB
/// at a million users), the next poll's equal table came from the heap arena of whichever
/// thread ran it, and stayed there after the poll, one table per arena.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists. Its result (1 on success) needs no handling: on failure glibc keeps its default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("testsigma-exporter: {e}");
    ExitCode::from(2)
}

/// Exit 2 for a configuration mistake found while starting, 1 for anything else.
fn failure(e: &anyhow::Error) -> ExitCode {
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return config_error(e);
    }
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
