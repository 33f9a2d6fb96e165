//! The `parley` command: read the settings, set up logging, bind, and run the server.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use parley::config::Config;

#[actix_web::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,actix_server=warn")).init();
    let listener = match TcpListener::bind(&config.bind) {
        Ok(listener) => listener,
        Err(err) => {
            log::error!("cannot listen on {}: {err}", config.bind);
            return ExitCode::FAILURE;
        }
    };
    match parley::run(listener, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
