//! The `gatehouse` binary: parse the command line, set up logging, run a command.

use anyhow::Result;
use gatehouse_server::config::{
    AdminCommand, Cli, Command, Config, ConfigCommand, SecretKeyCommand, Settings,
};

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// mimalloc instead of glibc malloc: under load glibc kept a 60 MB arena resident per tokio
/// worker (peak RSS 154 MB for JWT introspection at 32 connections); see the README's
/// "Performance" section for the measurements.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `gatehouse config check`: the settings given and their sources, then the effective
/// configuration (secrets elided); exit 1 with the reason when it is not valid.
fn config_check(settings: Settings) -> Result<std::process::ExitCode> {
    let lines = Cli::explain_from_env(std::env::args_os(), |n| std::env::var_os(n))?;
    let width = lines.iter().map(|l| l.setting.len()).max().unwrap_or(0);
    for l in &lines {
        println!(
            "{:<width$}  {:<8} {:<40} {}",
            l.setting,
            format!("{:?}", l.source).to_lowercase(),
            l.env.as_deref().unwrap_or("-"),
            l.value.as_deref().unwrap_or("(default)")
        );
    }
    match Config::from_settings(settings) {
        Ok(config) => {
            println!("\neffective configuration (secrets elided):\n{config:#?}");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("\nthe configuration is not valid: {e:#}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse_env_aware();
    // Commands over a running server need no server configuration (no database, no keys).
    if let Some(Command::Remote(command)) = cli.command {
        return Ok(gatehouse_cli::run(command, cli.settings.issuer, cli.settings.admin_url).await);
    }
    if let Some(Command::Config(ConfigCommand::Check)) = cli.command {
        return config_check(cli.settings);
    }
    let config = Config::from_settings(cli.settings)?;
    let telemetry = gatehouse_server::telemetry::init(&config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keys(command) => {
            let out = gatehouse_server::keys_command(&config, &command).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Admin(AdminCommand::Recover { output }) => {
            let path = gatehouse_server::admin_recover(&config, output.as_deref()).await?;
            println!(
                "A recovery admin was created. Its credentials are in {} (mode 0600): read them, store them safely, delete the file.",
                path.display()
            );
        }
        Command::Migrate => {
            gatehouse_server::migrate(&config).await?;
            tracing::info!("migrations applied");
        }
        Command::Remote(_) | Command::Config(_) => {}
        Command::SecretKey(SecretKeyCommand::Generate) => {
            let (_, text) = gatehouse_jwks::MasterKey::generate();
            println!("{text}");
        }
        Command::SecretKey(SecretKeyCommand::Rotate) => {
            let report = gatehouse_server::secret_key_rotate(&config).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Backup { file } => {
            let report = gatehouse_server::backup::backup(&config, &file).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Restore { file, force } => {
            let report = gatehouse_server::backup::restore(&config, &file, force).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Serve => {
            let server = gatehouse_server::start(config).await?;
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            server.shutdown().await?;
            tracing::info!("stopped");
        }
    }
    telemetry.shutdown().await;
    Ok(std::process::ExitCode::SUCCESS)
}
