//! One module per subcommand.

pub mod audit;
pub mod bundle;
pub mod conformance;
pub mod eval;
pub mod exception;
pub mod export;
pub mod image;
pub mod log;
pub mod new;
pub mod plugin;
pub mod report;
pub mod scan;
pub mod serve;
pub mod test;
pub mod webhook;
