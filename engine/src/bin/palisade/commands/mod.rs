//! One module per subcommand.

pub mod bundle;
pub mod eval;
pub mod plugin;
pub mod scan;
pub mod test;
