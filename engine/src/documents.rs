//! Reading Kubernetes objects from files: multi-document YAML, JSON, `kind: List`
//! items, directories (recursively: `.yaml`, `.yml`, `.json`) and standard input.
//!
//! A document that fails to parse is reported with its file, document index and
//! the parser's line, and reading goes on with the rest.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::Error;
use crate::object::SourceLocation;

/// One object read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The object.
    pub value: Value,
    /// Where it was read.
    pub source: SourceLocation,
}

/// Objects read so far and the errors met on the way.
#[derive(Debug, Default)]
pub struct Documents {
    /// Objects, in file order.
    pub documents: Vec<Document>,
    /// One error per unreadable file or unparsable document.
    pub errors: Vec<Error>,
    /// Paths given to [`Documents::read_path`] that held no object and no error: an
    /// empty directory, one without `.yaml`/`.yml`/`.json` files (a symlink to itself is
    /// skipped), an empty file or empty standard input. Usually a wrong path.
    pub empty_paths: Vec<String>,
}

impl Documents {
    /// Reads every path (see [`Documents::read_path`]), or standard input when there
    /// are none, as the CLI's `scan` and `report` take their arguments.
    pub fn from_paths(paths: &[String]) -> Documents {
        let mut docs = Documents::default();
        if paths.is_empty() {
            docs.read_path("-");
        }
        for p in paths {
            docs.read_path(p);
        }
        docs
    }

    /// Reads a path: `-` for standard input, a file, or a directory (recursively).
    /// A path that yields nothing at all is listed in [`Documents::empty_paths`].
    pub fn read_path(&mut self, path: &str) {
        let before = (self.documents.len(), self.errors.len());
        self.read_any(path);
        if before == (self.documents.len(), self.errors.len()) {
            self.empty_paths.push(path.to_string());
        }
    }

    fn read_any(&mut self, path: &str) {
        if path == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => self.parse_text("-", &text, Format::Detect),
                Err(e) => self.errors.push(Error::io("-", "cannot read standard input", e)),
            }
            return;
        }
        let p = Path::new(path);
        match std::fs::metadata(p) {
            Err(e) => self.errors.push(Error::io(p, "cannot read", e)),
            Ok(m) if m.is_dir() => self.read_dir(p),
            Ok(_) => self.read_file(p),
        }
    }

    /// Reads a directory's files (see [`walk`]) on up to as many threads as there are
    /// cores, each file into its own part, and appends the parts in reading order.
    fn read_dir(&mut self, dir: &Path) {
        let mut found = Vec::new();
        walk(dir, &mut found);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(found.len() / 32).max(1);
        let mut chunks: Vec<Vec<Found>> = Vec::new();
        let size = found.len().div_ceil(threads).max(1);
        let mut rest = found.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(size).collect());
        }
        let parts: Vec<Documents> = std::thread::scope(|s| {
            let mut chunks = chunks.into_iter();
            let first = chunks.next().unwrap_or_default();
            let others: Vec<_> = chunks.map(|c| s.spawn(move || read_found(c))).collect();
            let mut parts = read_found(first);
            for h in others {
                parts.extend(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            }
            parts
        });
        for part in parts {
            self.documents.extend(part.documents);
            self.errors.extend(part.errors);
        }
    }

    fn read_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Err(e) => self.errors.push(Error::io(path, "cannot read", e)),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    let format = if name.ends_with(".json") { Format::Json } else { Format::Detect };
                    self.parse_text(&name, &text, format)
                }
                Err(_) => self.errors.push(Error::Document {
                    file: name,
                    document: 1,
                    line: None,
                    column: None,
                    message: "not valid UTF-8 text".into(),
                }),
            },
        }
    }

    /// Parses text holding YAML documents or one JSON value; `file` names it in messages.
    pub fn parse_text(&mut self, file: &str, text: &str, format: Format) {
        let json = match format {
            Format::Json => true,
            Format::Yaml => false,
            Format::Detect => text.trim_start().starts_with(['{', '[']),
        };
        if json {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => self.push(file, 1, 1, v),
                Err(e) => self.errors.push(Error::Document {
                    file: file.into(),
                    document: 1,
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: format!("invalid JSON: {}", strip_json_location(&e.to_string())),
                }),
            }
            return;
        }
        for (index, chunk) in split_yaml(text).into_iter().enumerate() {
            let document = index + 1;
            let start_line = chunk.start;
            match serde_yaml_ng::from_str::<Value>(&chunk.text) {
                Ok(v) => self.push(file, document, chunk.content_line, v),
                Err(e) => {
                    let line = e.location().map(|l| l.line() + start_line - 1);
                    let mut message = e.to_string();
                    // serde_yaml_ng appends "at line L column C" relative to the document.
                    if let Some(i) = message.find(" at line ") {
                        message.truncate(i);
                    }
                    self.errors.push(Error::Document {
                        file: file.into(),
                        document,
                        line,
                        column: e.location().map(|l| l.column()),
                        message: format!("invalid YAML: {message}"),
                    });
                }
            }
        }
    }

    fn push(&mut self, file: &str, document: usize, line: usize, value: Value) {
        let source = SourceLocation { file: file.into(), document, line };
        match value {
            Value::Null => {}
            Value::Object(ref o) if is_list(o) => {
                if let Some(Value::Array(items)) = o.get("items") {
                    for item in items {
                        self.push(file, document, line, item.clone());
                    }
                }
            }
            Value::Object(_) => self.documents.push(Document { value, source }),
            other => self.errors.push(Error::Document {
                file: file.into(),
                document,
                line: Some(line),
                column: None,
                message: format!("expected a Kubernetes object (a mapping), got {}", kind_of(&other)),
            }),
        }
    }
}

/// How to parse text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (one or more documents).
    Yaml,
    /// JSON if the text starts with `{` or `[`, YAML otherwise.
    Detect,
}

fn strip_json_location(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_string()
}

fn is_list(o: &serde_json::Map<String, Value>) -> bool {
    o.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"))
        && o.get("items").is_some_and(Value::is_array)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a sequence",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "null",
    }
}

/// One YAML document's text.
struct Chunk {
    /// Line (1-based) where `text` starts.
    start: usize,
    /// Line of the document's first content (what findings point at).
    content_line: usize,
    text: String,
}

/// Splits YAML text at document markers (`---` at the start of a line; `...` ends a
/// document). Returns each document that has content. Lines outside the document are
/// blanked so that parser line numbers stay relative to `start`.
fn split_yaml(text: &str) -> Vec<Chunk> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let mut content_line = 0;
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker {
            if content_line > 0 {
                docs.push(Chunk { start, content_line, text: std::mem::take(&mut current) });
            }
            current.clear();
            start = n;
            content_line = 0;
            ended = false;
            // Keep any content after the marker, at its column.
            let rest = &line[3..];
            current.push_str(&" ".repeat(3));
            current.push_str(rest);
            current.push('\n');
            if !is_blank(rest) {
                content_line = n;
            }
            continue;
        }
        if line == "..." || line.starts_with("... ") {
            ended = true;
            current.push('\n');
            continue;
        }
        if ended || (line.starts_with('%') && content_line == 0) {
            current.push('\n');
            continue;
        }
        if content_line == 0 && !is_blank(line) {
            content_line = n;
        }
        current.push_str(line);
        current.push('\n');
    }
    if content_line > 0 {
        docs.push(Chunk { start, content_line, text: current });
    }
    docs
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// What a directory walk met, in reading order.
enum Found {
    File(std::path::PathBuf),
    Error(Error),
}

/// The `.yaml`, `.yml` and `.json` files under `dir`, recursively, sorted by name at
/// each level; hidden entries are skipped.
fn walk(dir: &Path, out: &mut Vec<Found>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return out.push(Found::Error(Error::io(dir, "cannot read directory", e))),
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(Found::File(p));
        }
    }
}

/// Each file read into its own part (an error stays an error), in order.
fn read_found(found: Vec<Found>) -> Vec<Documents> {
    found
        .into_iter()
        .map(|f| {
            let mut part = Documents::default();
            match f {
                Found::File(p) => part.read_file(&p),
                Found::Error(e) => part.errors.push(e),
            }
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_directory_is_read_in_order_with_its_errors_in_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("050-sub")).unwrap();
        std::fs::write(dir.path().join("050-sub/a.yaml"), "kind: Sub\n").unwrap();
        for i in 0..100 {
            let text = if i == 70 { "kind: [unclosed\n".to_string() } else { format!("kind: K{i:03}\n") };
            std::fs::write(dir.path().join(format!("{i:03}.yaml")), text).unwrap();
        }
        let d = Documents::from_paths(&[dir.path().display().to_string()]);
        let kinds: Vec<&str> = d.documents.iter().map(|d| d.value["kind"].as_str().unwrap_or("")).collect();
        let mut want: Vec<String> = (0..100).filter(|i| *i != 70).map(|i| format!("K{i:03}")).collect();
        want.insert(50, "Sub".into());
        assert_eq!(kinds, want);
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].to_string().contains("070.yaml"), "{}", d.errors[0]);
    }

    #[test]
    fn splits_documents_and_lists() {
        let text = "# leading comment\n---\na: 1\nkind: X\n---\n# only a comment\n---\nkind: List\napiVersion: v1\nitems:\n- kind: A\n- kind: B\n--- {kind: C}\n";
        let mut d = Documents::default();
        d.parse_text("f.yaml", text, Format::Detect);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let kinds: Vec<_> = d.documents.iter().map(|d| d.value["kind"].as_str().unwrap_or("")).collect();
        assert_eq!(kinds, ["X", "A", "B", "C"]);
        assert_eq!((d.documents[0].source.document, d.documents[0].source.line), (1, 3));
        assert_eq!((d.documents[1].source.document, d.documents[1].source.line), (2, 8));
        assert_eq!(d.documents[3].source.document, 3);
    }

    #[test]
    fn reports_error_in_third_document_and_keeps_others() {
        let text = "kind: A\n---\nkind: B\n---\nkind: C\nmetadata:\n  name: [unclosed\n---\nkind: D\n";
        let mut d = Documents::default();
        d.parse_text("bad.yaml", text, Format::Yaml);
        assert_eq!(d.documents.len(), 3);
        assert_eq!(d.errors.len(), 1);
        let msg = d.errors[0].to_string();
        assert!(msg.starts_with("bad.yaml: document 3 (line 8, column 1): invalid YAML"), "{msg}");
        assert!(msg.contains("invalid YAML"), "{msg}");
    }

    #[test]
    fn json_and_non_objects() {
        let mut d = Documents::default();
        d.parse_text("x.json", "{\"kind\": \"A\"}", Format::Detect);
        d.parse_text("y.yaml", "- 1\n- 2\n", Format::Yaml);
        d.parse_text("z.json", "{\"kind\": ", Format::Json);
        assert_eq!(d.documents.len(), 1);
        assert_eq!(d.errors.len(), 2);
        assert_eq!(
            d.errors[0].to_string(),
            "y.yaml: document 1 (line 1): expected a Kubernetes object (a mapping), got a sequence"
        );
        assert!(
            d.errors[1].to_string().starts_with("z.json: document 1 (line 1, column 9): invalid JSON: EOF"),
            "{}",
            d.errors[1]
        );
    }

    #[test]
    fn paths_that_yield_nothing_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        let looped = dir.path().join("looped");
        let full = dir.path().join("full");
        for d in [&empty, &looped, &full] {
            std::fs::create_dir(d).unwrap();
        }
        std::os::unix::fs::symlink(looped.join("self"), looped.join("self")).unwrap();
        std::fs::write(looped.join("notes.txt"), "kind: Pod\n").unwrap();
        std::fs::write(full.join("pod.yaml"), "kind: Pod\n").unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "kind: [\n").unwrap();
        let mut d = Documents::default();
        for p in [&empty, &looped, &full, &bad] {
            d.read_path(&p.display().to_string());
        }
        assert_eq!(d.documents.len(), 1);
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert_eq!(d.empty_paths, [empty.display().to_string(), looped.display().to_string()]);
    }
}
