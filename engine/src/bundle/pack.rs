//! Packed bundles: `NAME-VERSION.tar.gz`, reproducible byte for byte (sorted
//! entries, zero mtimes, owners and fixed modes, no gzip timestamp), carrying
//! `.palisade/manifest.json` with the sha256 of every file. Reading one enforces
//! size and count limits while decompressing, refuses absolute paths, `..`, links
//! and device entries, and checks every file against the manifest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Bundle, normalize};
use crate::error::{Error, Result};

/// Where the manifest sits inside an archive.
pub const MANIFEST_PATH: &str = ".palisade/manifest.json";

/// The digest manifest of a packed bundle (what signatures sign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestManifest {
    /// Format marker.
    pub format: String,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// sha256 (hex) of every file, by path.
    pub files: BTreeMap<String, String>,
}

const FORMAT: &str = "palisade-bundle/v1";

/// Limits applied while reading an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total uncompressed bytes.
    pub max_total_bytes: u64,
    /// Number of entries.
    pub max_files: usize,
    /// Bytes of one file.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_total_bytes: 256 * 1024 * 1024, max_files: 10_000, max_file_bytes: 64 * 1024 * 1024 }
    }
}

impl DigestManifest {
    fn of(bundle: &Bundle) -> DigestManifest {
        DigestManifest {
            format: FORMAT.into(),
            name: bundle.name().to_string(),
            version: bundle.version().to_string(),
            files: bundle
                .paths()
                .filter_map(|p| Some((p.to_string(), hex::encode(Sha256::digest(bundle.file(p)?)))))
                .collect(),
        }
    }

    /// The canonical bytes (sorted keys, no whitespace).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Packs a bundle into gzip-compressed tar bytes. The same bundle always gives the
/// same bytes.
pub fn pack(bundle: &Bundle) -> Result<Vec<u8>> {
    let manifest = DigestManifest::of(bundle).to_bytes();
    let gz = flate2::GzBuilder::new().mtime(0).operating_system(255).write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut add = |path: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, bytes)
    };
    let err = |e: std::io::Error| Error::io(bundle.origin(), "cannot pack", e);
    add(MANIFEST_PATH, &manifest).map_err(err)?;
    for path in bundle.paths() {
        add(path, bundle.file(path).unwrap_or_default()).map_err(err)?;
    }
    let gz = tar.into_inner().map_err(err)?;
    gz.finish().map_err(err)
}

/// The conventional file name, `NAME-VERSION.tar.gz`.
pub fn file_name(bundle: &Bundle) -> String {
    format!("{}-{}.tar.gz", bundle.name(), bundle.version())
}

/// The contents of an archive.
#[derive(Debug)]
pub struct Unpacked {
    /// Every bundle file, by path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The digest manifest.
    pub manifest: DigestManifest,
    /// Its bytes as stored (what signatures sign).
    pub manifest_bytes: Vec<u8>,
}

/// Reads an archive into its files and manifest, enforcing `limits` as it
/// decompresses and checking every file against the manifest.
pub fn unpack(path: &Path, bytes: &[u8], limits: Limits) -> Result<Unpacked> {
    let bad = |message: String| Error::Integrity { path: path.to_path_buf(), message };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let entries = archive.entries().map_err(|e| bad(format!("not a gzip-compressed tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("truncated or corrupt archive: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("entry with an unreadable path: {e}")))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(bad(format!("refusing link entry {raw}: bundles hold regular files only")));
        }
        if !kind.is_file() {
            return Err(bad(format!("refusing special entry {raw} ({kind:?}): bundles hold regular files only")));
        }
        let name = normalize(&raw)
            .ok_or_else(|| bad(format!("refusing entry {raw}: absolute paths and `..` are not allowed")))?;
        if files.len() >= limits.max_files {
            return Err(bad(format!("more than {} files", limits.max_files)));
        }
        let declared = entry.header().size().unwrap_or(u64::MAX);
        if declared > limits.max_file_bytes {
            return Err(bad(format!(
                "{name} is {declared} bytes, over the {} byte limit per file",
                limits.max_file_bytes
            )));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("truncated or corrupt archive while reading {name}: {e}")))?;
        total += data.len() as u64;
        if total > limits.max_total_bytes {
            return Err(bad(format!(
                "more than {} bytes uncompressed (a decompression bomb?)",
                limits.max_total_bytes
            )));
        }
        if files.insert(name.clone(), data).is_some() {
            return Err(bad(format!("{name} appears twice")));
        }
    }
    let manifest_bytes =
        files.remove(MANIFEST_PATH).ok_or_else(|| bad(format!("no {MANIFEST_PATH}: not a packed Palisade bundle")))?;
    let manifest: DigestManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("{MANIFEST_PATH} is not valid: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!("unknown manifest format {:?}", manifest.format)));
    }
    for (name, want) in &manifest.files {
        match files.get(name) {
            None => return Err(bad(format!("file {name} listed in the manifest was removed"))),
            Some(data) if hex::encode(Sha256::digest(data)) != *want => {
                return Err(bad(format!("file {name} was altered (its sha256 differs from the manifest)")));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = files.keys().find(|f| !manifest.files.contains_key(*f)) {
        return Err(bad(format!("file {extra} was added (it is not in the manifest)")));
    }
    Ok(Unpacked { files, manifest, manifest_bytes })
}
