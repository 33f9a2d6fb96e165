pub mod config;
pub mod error;
pub mod protocol;
pub mod store;
pub mod types;
