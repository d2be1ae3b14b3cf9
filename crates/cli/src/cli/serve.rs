//! `revkv serve`: the HTTP server on a tokio runtime, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use revkv::Db;
use revkv_server::Config;

use super::Failure;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on; loopback by default, so nothing is exposed unasked.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A TOML or JSON file with extra kinds, bearer tokens, Swift accounts and limits.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(db: &Db, args: ServeArgs) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|error| Failure::Serve(error.to_string()))?,
        None => Config::default(),
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| Failure::Serve(format!("cannot start the runtime: {error}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| {
                Failure::Serve(format!("cannot listen on {}: {error}", args.listen))
            })?;
        let address = listener
            .local_addr()
            .map_err(|error| Failure::Serve(error.to_string()))?;
        // Scripts and tests read this line to learn the port of `--listen 127.0.0.1:0`.
        println!("listening on http://{address}");
        revkv_server::serve(listener, db.clone(), &config, shutdown_signal())
            .await
            .map_err(|error| Failure::Serve(error.to_string()))
    })?;
    // Durable on return: under buffered durability the flush makes the last writes so.
    db.flush()?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT; if a handler cannot be installed, on the other alone.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}
