//! The `tributary` binary: parses the command line, resolves the settings
//! once ([`settings::Settings`]), and runs the requested command
//! ([`commands`]). Composition lives here; every capability lives in the
//! library crates.

mod cli;
mod commands;
mod config;
mod output;
mod settings;
mod shutdown;

use clap::Parser;

/// jemalloc: queries allocate and free many short-lived buffers per file;
/// glibc's malloc spent a fifth of a filtered count's CPU on them (see the
/// comment on the dependency in `Cargo.toml`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let cli = cli::Cli::parse();
    let long_running = matches!(
        cli.command,
        cli::Command::Standalone(_)
            | cli::Command::Scheduler(_)
            | cli::Command::Web(_)
            | cli::Command::Stream(cli::StreamCommand::Run { .. })
            | cli::Command::Transform(cli::TransformCommand::Run { .. })
    );
    // The Delta libraries log every snapshot at info: keep them to warnings.
    let default_level = if long_running {
        "info,deltalake=warn,deltalake_core=warn,buoyant_kernel=warn,delta_kernel=warn,datafusion=warn"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let settings = settings::Settings::resolve(&cli)?;
        commands::run(&settings, &cli.command).await
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes its message already includes.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// `tributary lake ls users | head`: when the reader of our output goes
/// away, `println!` panics with "failed printing to stdout: Broken pipe".
/// Like other Unix tools, end quietly instead, with the status a shell
/// shows for a process a closed pipe stopped (128 + SIGPIPE).
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
