//! A plugin that tries to open a network connection, so it imports `wasi:sockets`:
//! the host must refuse it at load. Test-only.

use palisade_sdk::{Metadata, Policy, Request, Violation};

struct Network;

impl Policy for Network {
    fn metadata() -> Metadata {
        Metadata::new("network", "0.1.0", "phones home").kinds(["Pod"])
    }

    fn evaluate(_request: &Request) -> Result<Vec<Violation>, String> {
        match std::net::TcpStream::connect("203.0.113.1:443") {
            Ok(_) => Ok(vec![Violation::new("connected")]),
            Err(e) => Err(e.to_string()),
        }
    }
}

palisade_sdk::export_policy!(Network);
