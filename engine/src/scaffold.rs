//! `palisade new policy`: adds a working policy to a bundle — its module (Rego) or
//! plugin crate (Rust, built to a WebAssembly component and pinned), its manifest
//! entry, a parameter schema and a test file with a passing and a failing case —
//! so `palisade test` is green straight away and the author edits from there.
//!
//! [`pin_plugins`] (`palisade bundle pin`) re-pins the `sha256` of a bundle's
//! plugins after they are rebuilt.
//!
//! The skeleton requires Pods to carry the labels in its `labels` parameter: small
//! enough to read at a glance, and it shows parameters, messages and details.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bundle::{Bundle, RegoVersion};
use crate::error::{Error, Result};

/// Which implementation to scaffold.
#[derive(Debug, Clone)]
pub enum Implementation {
    /// A Rego module in `rules/`.
    Rego,
    /// A Rust plugin crate in `plugin-src/<id>/`, built with `cargo` into
    /// `plugins/<id>.wasm`. `sdk` is the `sdk/` directory of a Palisade checkout.
    Wasm {
        /// The Palisade SDK crate the plugin depends on.
        sdk: PathBuf,
    },
}

/// What [`new_policy`] wrote.
#[derive(Debug, Clone)]
pub struct Created {
    /// Files created or changed, relative to the bundle.
    pub files: Vec<String>,
    /// The command that rebuilds the plugin after an edit (WebAssembly only).
    pub rebuild: Option<String>,
}

/// Adds policy `id` to the bundle in `dir`. Refuses an invalid or existing id and
/// never overwrites a file.
pub fn new_policy(dir: &Path, id: &str, implementation: &Implementation) -> Result<Created> {
    let bundle = Bundle::from_dir(dir)?;
    let manifest = dir.join("bundle.toml");
    let bad =
        |message: String| Error::Policy { path: manifest.clone(), policy: id.to_string(), key: "id".into(), message };
    if !crate::bundle::valid_id(id) {
        return Err(bad("expected lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit".into()));
    }
    if bundle.policies().iter().any(|p| p.id == id) {
        return Err(bad("the bundle already has a policy with this id".into()));
    }
    let snake = id.replace(['-', '.'], "_");
    // Everything this writes besides bundle.toml: refuse up front if any exists, and
    // on a later failure (a plugin that does not build, a policy that does not
    // compile) remove them and restore bundle.toml, so a retry starts clean.
    let targets: Vec<String> = match implementation {
        Implementation::Rego => vec![format!("rules/{snake}.rego"), format!("schemas/{snake}.json")],
        Implementation::Wasm { .. } => vec![format!("plugin-src/{id}"), format!("plugins/{id}.wasm")],
    }
    .into_iter()
    .chain([format!("tests/{snake}.yaml")])
    .collect();
    if let Some(existing) = targets.iter().find(|t| dir.join(t).exists()) {
        return Err(Error::input(dir.join(existing).display().to_string(), "already exists; not overwriting it"));
    }
    let original = std::fs::read_to_string(&manifest).map_err(|e| Error::io(&manifest, "cannot read", e))?;
    let result = write_policy(dir, &bundle, id, &snake, implementation, &original);
    if result.is_err() {
        for t in &targets {
            let path = dir.join(t);
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
        let _ = std::fs::write(&manifest, &original);
    }
    result
}

/// The writing half of [`new_policy`], once the id and paths are known to be free.
fn write_policy(
    dir: &Path,
    bundle: &Bundle,
    id: &str,
    snake: &str,
    implementation: &Implementation,
    original: &str,
) -> Result<Created> {
    let manifest = dir.join("bundle.toml");
    let title = title(id);
    let test_file = format!("tests/{snake}.yaml");
    let mut files = Vec::new();
    let mut entry = format!(
        "\n[[policy]]\nid = \"{id}\"\ntitle = \"{title}\"\ndescription = \"Pods carry every label listed in the `labels` parameter.\"\n\
         # The ids of the framework's requirements this policy helps enforce (e.g. \"2.2.5\").\nrequirements = []\nseverity = \"medium\"\n"
    );
    let mut rebuild = None;
    match implementation {
        Implementation::Rego => {
            let module = format!("rules/{snake}.rego");
            let schema = format!("schemas/{snake}.json");
            let package = format!("{}.{snake}", bundle.name().replace(['-', '.'], "_"));
            write_new(dir, &module, &rego_module(&title, &package))?;
            write_new(dir, &schema, SCHEMA)?;
            files.extend([module.clone(), schema.clone()]);
            entry.push_str(&format!("rego = \"{module}\"\nschema = \"{schema}\"\n"));
            if bundle.manifest().bundle.rego_version == RegoVersion::V0 {
                entry.push_str("rego_version = \"v1\"\n");
            }
        }
        Implementation::Wasm { sdk } => {
            let crate_dir = format!("plugin-src/{id}");
            let sdk_dir = sdk;
            let sdk = relative(&dir.join(&crate_dir), sdk)?;
            write_new(dir, &format!("{crate_dir}/Cargo.toml"), &cargo_toml(id, &sdk))?;
            write_new(dir, &format!("{crate_dir}/src/lib.rs"), &plugin_source(id, &title))?;
            write_new(dir, &format!("{crate_dir}/.gitignore"), "/target/\n")?;
            // The versions the repository's own plugins are built and tested with.
            if let Ok(lock) = std::fs::read(sdk_dir.join("../plugins/Cargo.lock")) {
                let path = dir.join(&crate_dir).join("Cargo.lock");
                std::fs::write(&path, lock).map_err(|e| Error::io(&path, "cannot write", e))?;
            }
            files.extend([format!("{crate_dir}/Cargo.toml"), format!("{crate_dir}/src/lib.rs")]);
            let wasm = format!("plugins/{id}.wasm");
            let sha256 = build_plugin(dir, &crate_dir, snake, &wasm)?;
            files.push(wasm.clone());
            entry.push_str(&format!("wasm = \"{wasm}\"\nsha256 = \"{sha256}\"\n"));
            rebuild = Some(format!(
                "cargo build --release --target wasm32-wasip2 --manifest-path {d}/{crate_dir}/Cargo.toml && cp {d}/{crate_dir}/target/wasm32-wasip2/release/{snake}.wasm {d}/{wasm} && palisade bundle pin {d}",
                d = dir.display()
            ));
        }
    }
    entry.push_str("match = { kinds = [\"Pod\"] }\nparameters = { labels = [\"owner\"] }\n");
    write_new(dir, &test_file, &test_cases(id))?;
    files.push(test_file);
    let mut text = original.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&entry);
    std::fs::write(&manifest, text).map_err(|e| Error::io(&manifest, "cannot write", e))?;
    files.push("bundle.toml".into());
    // The new policy must load and compile with the rest of the bundle.
    crate::Engine::builder().bundle(Bundle::from_dir(dir)?).build()?;
    Ok(Created { files, rebuild })
}

/// A plugin pin [`pin_plugins`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Policy id.
    pub policy: String,
    /// The previous pin.
    pub old: String,
    /// The plugin file's sha256 now.
    pub new: String,
}

/// Sets each `wasm` policy's `sha256` in `dir/bundle.toml` to its plugin file's
/// digest (adding the key where it is missing), editing only those lines; returns
/// the pins that changed (`old` is empty for an added pin).
pub fn pin_plugins(dir: &Path) -> Result<Vec<Pinned>> {
    let path = dir.join("bundle.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
    let manifest: crate::bundle::Manifest =
        toml::from_str(&text).map_err(|e| Error::Manifest { path: path.clone(), message: e.to_string() })?;
    let mut changed = Vec::new();
    // The manifest split at each `[[policy]]` header: block i + 1 is policy i.
    let mut blocks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.trim() == "[[policy]]" || blocks.is_empty() {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
        }
    }
    for (i, p) in manifest.policies.iter().enumerate() {
        let Some(wasm) = &p.wasm else { continue };
        let file = dir.join(wasm);
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, "cannot read plugin", e))?;
        let new = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let old = p.sha256.clone().unwrap_or_default();
        if old == new {
            continue;
        }
        let not_found = |what: &str| Error::Policy {
            path: path.clone(),
            policy: p.id.clone(),
            key: "sha256".into(),
            message: format!("cannot find {what} in the policy's [[policy]] block"),
        };
        let block = blocks.get_mut(i + 1).ok_or_else(|| not_found("the block"))?;
        // Rewrite the `sha256 = ...` line, or add one after the `wasm = ...` line.
        let key_line = |key: &str, line: &str| {
            line.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        };
        let mut lines: Vec<String> = block.split_inclusive('\n').map(str::to_string).collect();
        let pin = format!("sha256 = \"{new}\"\n");
        if let Some(line) = lines.iter_mut().find(|l| key_line("sha256", l)) {
            *line = pin;
        } else {
            let at = lines.iter().position(|l| key_line("wasm", l)).ok_or_else(|| not_found("`wasm = ...`"))?;
            lines.insert(at + 1, pin);
        }
        *block = lines.concat();
        changed.push(Pinned { policy: p.id.clone(), old, new });
    }
    if !changed.is_empty() {
        std::fs::write(&path, blocks.concat()).map_err(|e| Error::io(&path, "cannot write", e))?;
    }
    Ok(changed)
}

/// Finds the SDK: `sdk/` of a Palisade checkout above `from`, else the one this
/// binary was built from.
pub fn find_sdk(from: &Path) -> Option<PathBuf> {
    let from = std::fs::canonicalize(from).ok()?;
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    from.ancestors()
        .map(|a| a.join("sdk"))
        .chain(std::iter::once(built_from))
        .find(|s| s.join("wit/policy.wit").is_file())
        .and_then(|s| std::fs::canonicalize(s).ok())
}

fn title(id: &str) -> String {
    let words = id.replace(['-', '_', '.'], " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn write_new(dir: &Path, rel: &str, text: &str) -> Result<()> {
    let path = dir.join(rel);
    if path.exists() {
        return Err(Error::input(path.display().to_string(), "already exists; not overwriting it"));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "cannot create directory", e))?;
    }
    std::fs::write(&path, text).map_err(|e| Error::io(&path, "cannot write", e))
}

/// `to` relative to `from` (both made absolute), for a Cargo path dependency.
fn relative(from: &Path, to: &Path) -> Result<String> {
    let abs = |p: &Path| -> Result<PathBuf> {
        let base = std::env::current_dir().map_err(|e| Error::io(p, "cannot resolve", e))?;
        let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        Ok(out)
    };
    let (from, to) = (abs(from)?, abs(to)?);
    let common = from.components().zip(to.components()).take_while(|(a, b)| a == b).count();
    let ups = from.components().count() - common;
    let mut rel: Vec<String> = vec!["..".into(); ups];
    rel.extend(to.components().skip(common).map(|c| c.as_os_str().to_string_lossy().into_owned()));
    Ok(rel.join("/"))
}

/// Makes sure the toolchain that builds the plugin has the `wasm32-wasip2` standard
/// library. rustup installs the targets of `rust-toolchain.toml` only with the
/// toolchain itself, so on a machine that already had the toolchain it is added here;
/// without rustup the error says what to install.
fn ensure_wasm_target() -> Result<()> {
    let target = "wasm32-wasip2";
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Error::io("rustc", "cannot run rustc to find the toolchain", e))?;
    let sysroot = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(target).is_dir() {
        return Ok(());
    }
    eprintln!("palisade: adding the {target} target to the toolchain (rustup target add {target})");
    match Command::new("rustup").args(["target", "add", target]).stdout(std::io::stderr()).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::input(target, format!("`rustup target add {target}` failed ({s})"))),
        Err(_) => Err(Error::input(
            target,
            format!(
                "the target is not installed in {} and rustup is not available: install the {target} standard library for this Rust toolchain",
                sysroot.display()
            ),
        )),
    }
}

/// Builds the plugin crate and installs the component; returns its sha256.
fn build_plugin(dir: &Path, crate_dir: &str, snake: &str, wasm: &str) -> Result<String> {
    ensure_wasm_target()?;
    let manifest = dir.join(crate_dir).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(&manifest)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| Error::io(&manifest, "cannot run cargo", e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::input(manifest.display().to_string(), format!("cargo build failed:\n{}", tail.join("\n"))));
    }
    let built = dir.join(crate_dir).join(format!("target/wasm32-wasip2/release/{snake}.wasm"));
    let bytes = std::fs::read(&built).map_err(|e| Error::io(&built, "cannot read the built plugin", e))?;
    let dest = dir.join(wasm);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "cannot create directory", e))?;
    }
    std::fs::write(&dest, &bytes).map_err(|e| Error::io(&dest, "cannot write", e))?;
    Ok(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)))
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["labels"],
  "properties": {
    "labels": {
      "description": "Labels every Pod must carry.",
      "type": "array",
      "items": { "type": "string", "minLength": 1 }
    }
  }
}
"#;

fn rego_module(title: &str, package: &str) -> String {
    format!(
        r#"# {title}: Pods carry every label listed in the `labels` parameter.
# The input is {{"review": <AdmissionRequest-shaped object>, "parameters": <the policy's parameters>}};
# report findings through `violation` ({{"msg", "details"}}), `deny` or `warn`.
# Run `palisade test` after each edit (or `palisade test --watch`).
package {package}

violation contains {{"msg": msg, "details": {{"missing": label}}}} if {{
	some label in input.parameters.labels
	not input.review.object.metadata.labels[label]
	msg := sprintf("pod %s is missing label %s", [input.review.object.metadata.name, label])
}}
"#
    )
}

fn test_cases(id: &str) -> String {
    format!(
        r#"# Cases for {id}: edit them along with the policy. Format: conformance/SPEC.md.
policy: {id}
cases:
  - name: a pod with the label is allowed
    object:
      apiVersion: v1
      kind: Pod
      metadata: {{name: web, namespace: shop, labels: {{owner: payments}}}}
      spec: {{containers: [{{name: app, image: nginx}}]}}
    expect: {{allowed: true}}
  - name: a pod without the label is denied
    object:
      apiVersion: v1
      kind: Pod
      metadata: {{name: web, namespace: shop}}
      spec: {{containers: [{{name: app, image: nginx}}]}}
    expect: {{allowed: false, violations: 1, message: "pod web is missing label owner"}}
"#
    )
}

fn cargo_toml(id: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{id}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
palisade-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A workspace of its own: built with
#   cargo build --release --target wasm32-wasip2
[workspace]

[profile.release]
# Small, deterministic components: the bundle pins the plugin's sha256.
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

/// `plugins/template/src/lib.rs`, the plugin a new author copies by hand: the
/// scaffold starts from the same source (and its native unit test).
const PLUGIN_TEMPLATE: &str = include_str!("../../plugins/template/src/lib.rs");

fn plugin_source(id: &str, title: &str) -> String {
    // The template's `//!` header tells the reader to copy it; the scaffold says what to do next.
    let body = PLUGIN_TEMPLATE.split_once("\n\n").map_or(PLUGIN_TEMPLATE, |(_, rest)| rest);
    format!(
        "//! {title}: Pods carry every label listed in the `labels` setting (the policy's\n\
         //! `parameters` in bundle.toml). Edit `evaluate`, rebuild, re-pin, `palisade test`.\n\n{}",
        body.replace("\"required-labels\"", &format!("{id:?}"))
            .replace("\"Pods carry the labels listed in the settings\"", &format!("{title:?}"))
            .replace("            .requirements([\"12.5.1\"])\n", "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_source_is_the_template_renamed() {
        let source = plugin_source("owner-label", "Owner label");
        assert!(source.starts_with("//! Owner label: Pods carry every label"), "{source}");
        assert!(
            source.contains(r#"Metadata::new("owner-label", env!("CARGO_PKG_VERSION"), "Owner label")"#),
            "{source}"
        );
        assert!(!source.contains("required-labels") && !source.contains("12.5.1"), "{source}");
        assert!(source.contains("palisade_sdk::export_policy!("), "{source}");
    }

    #[test]
    fn titles_and_relative_paths() {
        assert_eq!(title("require-owner-label"), "Require owner label");
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/sdk")).unwrap(), "../../sdk");
        assert_eq!(relative(Path::new("/a/b/../c"), Path::new("/a/c/d")).unwrap(), "d");
    }

    #[test]
    fn pins_replace_any_value_and_are_added_where_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"not really wasm").unwrap();
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not really wasm"));
        let manifest = "[bundle]\nname = \"b\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n\n\
            [[policy]]\nid = \"a\"\ntitle = \"a\"\nwasm = \"p.wasm\"\nsha256 = \"\"\n\n\
            [[policy]]\nid = \"b\"\ntitle = \"b\"\nwasm = \"p.wasm\"\nsha256 = \"TODO\"\n\n\
            [[policy]]\nid = \"c\"\ntitle = \"c\"\nwasm = \"p.wasm\"\n[policy.parameters]\nx = 1\n";
        std::fs::write(dir.path().join("bundle.toml"), manifest).unwrap();
        let changed = pin_plugins(dir.path()).unwrap();
        let olds: Vec<&str> = changed.iter().map(|p| p.old.as_str()).collect();
        assert_eq!(olds, ["", "TODO", ""]);
        let text = std::fs::read_to_string(dir.path().join("bundle.toml")).unwrap();
        assert_eq!(text.matches(&format!("sha256 = \"{digest}\"\n")).count(), 3, "{text}");
        assert!(text.starts_with("[bundle]\n"), "{text}");
        assert!(text.contains(&format!("wasm = \"p.wasm\"\nsha256 = \"{digest}\"\n[policy.parameters]")), "{text}");
        assert!(pin_plugins(dir.path()).unwrap().is_empty());
    }
}
