//! Logging to the host (`host.log` in the WIT). Natively (in `cargo test`) messages
//! go to stderr. Never log secret values from the input.

#[cfg(target_arch = "wasm32")]
use crate::bindings::palisade::policy::host;

macro_rules! level {
    ($name:ident, $variant:ident) => {
        /// Logs a message at this level.
        pub fn $name(message: &str) {
            #[cfg(target_arch = "wasm32")]
            host::log(host::LogLevel::$variant, message);
            #[cfg(not(target_arch = "wasm32"))]
            eprintln!("[{}] {message}", stringify!($name));
        }
    };
}

level!(trace, Trace);
level!(debug, Debug);
level!(info, Info);
level!(warn, Warn);
level!(error, Error);
