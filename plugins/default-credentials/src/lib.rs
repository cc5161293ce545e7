//! `default-credentials` (PCI DSS 2.2.2: vendor default accounts and passwords are
//! changed before a system goes live).
//!
//! Finds vendor-default, well-known and trivially weak passwords in container
//! environment variables (all container kinds), ConfigMap `data`, and Secret
//! `data` (base64-decoded) and `stringData`. A value is checked when its key looks
//! like a credential (`*PASSWORD*`, `*PASSWD*`, `*_PWD`, `*SECRET*`, `*TOKEN*`,
//! `*API_KEY*`, ...). It is flagged when it is a known default (`defaults.txt`,
//! compared case-insensitively), empty, equal to the user name found next to it,
//! or shorter than the minimum length. Messages name the object and key, never
//! the value.

mod credentials;

pub use crate::credentials::{DefaultCredentials, is_credential_key, known_default_count};

palisade_sdk::export_policy!(DefaultCredentials);
