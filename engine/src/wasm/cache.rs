//! The on-disk cache of precompiled plugins: the second start of an engine is a
//! deserialize, not a compile. Entries are keyed by the plugin's sha256, the
//! wasmtime line and a hash of the engine configuration, and carry the sha256 of
//! their own bytes, checked before loading.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime line artifacts are compiled with (part of the cache key).
const WASMTIME_LINE: &str = "wasmtime-48";

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled from the `.wasm` (cache miss, or no cache).
    Compiled,
    /// Deserialised from the cache.
    Cached,
}

fn config_hash(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn entry_path(dir: &Path, sha256: &str, engine: &Engine) -> PathBuf {
    dir.join(format!("{sha256}-{WASMTIME_LINE}-{}.cwasm", config_hash(engine)))
}

/// Loads `wasm` (whose sha256 is `sha256`) through the cache in `dir`, compiling and
/// storing it on a miss. Cache problems are never fatal: they fall back to compiling.
pub(crate) fn load(
    engine: &Engine,
    dir: Option<&Path>,
    sha256: &str,
    wasm: &[u8],
) -> wasmtime::Result<(Component, Origin)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, Origin::Compiled));
    };
    let path = entry_path(dir, sha256, engine);
    if let Some(c) = read_entry(engine, &path) {
        return Ok((c, Origin::Cached));
    }
    let bytes = engine.precompile_component(wasm)?;
    // SAFETY-relevant: the bytes were produced just now by this engine.
    let component = deserialize(engine, &bytes)?;
    write_entry(dir, &path, &bytes);
    Ok((component, Origin::Compiled))
}

/// The cached component at `path`; `None` when there is none, or (with a warning)
/// when the entry is corrupt or was not written by this engine: it is then
/// recompiled and rewritten, never trusted.
fn read_entry(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    // Layout: 64 hex digits of sha256(artifact), then the artifact.
    let checked = (data.len() >= 64)
        .then(|| data.split_at(64))
        .filter(|(digest, artifact)| hex::encode(Sha256::digest(artifact)).as_bytes() == *digest);
    let loaded = match checked {
        Some((_, artifact)) => deserialize(engine, artifact).map_err(|e| format!("{e:#}")),
        None => Err("its digest does not match its contents".to_string()),
    };
    match loaded {
        Ok(c) => Some(c),
        Err(why) => {
            tracing::warn!(path = %path.display(), "ignoring a corrupt or foreign precompiled plugin ({why}); recompiling");
            None
        }
    }
}

fn write_entry(dir: &Path, path: &Path, artifact: &[u8]) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut data = hex::encode(Sha256::digest(artifact)).into_bytes();
    data.extend_from_slice(artifact);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &data).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The one `unsafe` in Palisade, audited: wasmtime requires `unsafe` to load
/// precompiled machine code, because it cannot verify that arbitrary bytes are a
/// trustworthy artifact. Here the bytes are either produced by this same engine a
/// moment ago, or read from Palisade's own cache directory and checked against the
/// sha256 stored with them when this engine wrote them; the file name also binds
/// them to the plugin's sha256 and this engine's configuration hash, and wasmtime
/// itself checks the artifact's version and configuration before use.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see above — `artifact` was produced by `Engine::precompile_component`
    // with a compatible configuration, and its integrity was checked.
    unsafe { Component::deserialize(engine, artifact) }
}
