//! `ota manifest init --from MODEL`: a manifest started from what the model declares.
//!
//! MODEL is an `.onnx` or `.tflite` file, or a directory holding exactly one of them and the
//! model's other files (ONNX external data, safetensors weights, labels, a tokenizer...). The
//! model graph is read by `ota-model`: the framework block, the inputs and outputs, the
//! precisions; every file gets its entry (path, role, size, sha256; a safetensors file its
//! tensor count and dtypes). What no model file says (licence, targets, and for a TFLite
//! model that records none, its minimum runtime) comes from the flags, or is listed as left to
//! complete. Metrics are left empty, to fill with what was measured.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest model graph read whole: protobuf's and flatbuffers' 2 GiB.
const MAX_GRAPH_BYTES: usize = 2 << 30;

use ota_core::manifest::{FileRole, License, ModelFile, Target, Timestamp};
use ota_core::{Channel, Name, Sha256Digest, Version};
use ota_model::{Draft, DraftMeta, FileKind, OnnxModel, SafetensorsFile, TfliteModel, ToComplete};
use serde_json::{Value, json};

use crate::bundle;
use crate::doc::{self, Form};
use crate::out::{self, CliError, Outcome};
use crate::progress;

/// `ota manifest init --from MODEL`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The model: an .onnx or .tflite file, or a directory holding exactly one and the
    /// model's other files.
    #[arg(long)]
    from: PathBuf,
    /// Where to write the manifest (`.yaml`/`.yml` for YAML, otherwise JSON); stdout when
    /// absent.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace `--out` if it exists.
    #[arg(long)]
    force: bool,
    /// The model's name [default: the model file's name without its extension, or the
    /// directory's name].
    #[arg(long)]
    name: Option<String>,
    /// The model's semantic version.
    #[arg(long = "model-version", default_value = "0.1.0")]
    model_version: String,
    /// The licence, as an SPDX expression (`Apache-2.0`); left to complete when absent.
    #[arg(long)]
    license: Option<String>,
    /// A hardware profile the model is built for (`generic-arm64`, `nvidia-jetson-orin-nx`);
    /// repeat for several. Left to complete when absent.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// The release channel.
    #[arg(long, default_value = "stable")]
    channel: String,
    /// When the model was produced, RFC 3339 [default: now].
    #[arg(long)]
    created_at: Option<String>,
    /// A one-line description.
    #[arg(long)]
    description: Option<String>,
}

/// Reads the model, writes the manifest, and lists what is left to complete.
pub fn init(a: &InitArgs, json: bool) -> Result<Outcome, CliError> {
    if let Some(out) = &a.out
        && out.exists()
        && !a.force
    {
        return Err(CliError::usage(format!(
            "{}: exists; give --force to replace it",
            out.display()
        )));
    }
    let is_dir = a.from.is_dir();
    let files = if is_dir {
        bundle::files_in(&a.from)?
    } else {
        let name = a
            .from
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CliError::usage(format!("{}: not a file name", a.from.display())))?;
        vec![(name.to_string(), a.from.clone())]
    };
    let graph = graph(&a.from, &files)?;
    let meta = meta(a)?;
    let (graph_rel, graph_path) = &files[graph];
    // An ONNX graph is one protobuf message, which protobuf bounds at 2 GiB; a TFLite
    // flatbuffer too. Weights beyond that live in files of their own.
    let bytes = out::read(graph_path, MAX_GRAPH_BYTES)?;
    let entry = |rel: &str, role: FileRole, size: u64, sha256: Sha256Digest| {
        rel.parse()
            .map(|path| ModelFile {
                path,
                role,
                size_bytes: size,
                sha256,
                tensor_count: None,
                dtypes: Vec::new(),
            })
            .map_err(|e| CliError::usage(format!("{rel}: {e}")))
    };
    let refused = |e: ota_model::ModelError| {
        CliError::failure(None, format!("{}: {e}", graph_path.display()))
    };
    let graph_entry = entry(
        graph_rel,
        FileRole::Engine,
        bytes.len() as u64,
        Sha256Digest::of(&bytes),
    )?;
    let mut draft = if is_onnx(graph_rel) {
        Draft::from_onnx(graph_entry, OnnxModel::from_bytes(&bytes).map_err(refused)?)
    } else {
        Draft::from_tflite(
            graph_entry,
            TfliteModel::from_bytes(&bytes).map_err(refused)?,
        )
    };
    drop(bytes);

    // ONNX external data lives beside the graph: it must be among the files.
    let dir_of_graph = Path::new(graph_rel).parent().unwrap_or(Path::new(""));
    let mut external = Vec::new();
    for location in draft.external_data() {
        let rel = dir_of_graph.join(location);
        let rel = rel.to_str().unwrap_or(location).replace('\\', "/");
        if !files.iter().any(|(r, _)| *r == rel) {
            let hint = if is_dir {
                format!("it is not in {}", a.from.display())
            } else {
                "give the model's directory (--from DIR)".to_string()
            };
            return Err(CliError::failure(
                None,
                format!(
                    "{}: keeps weights in the external file {location}: {hint}",
                    graph_path.display()
                ),
            ));
        }
        external.push(rel);
    }

    for (i, (rel, path)) in files.iter().enumerate() {
        if i == graph {
            continue;
        }
        let size = std::fs::metadata(path)
            .map_err(|e| CliError::io(path, e))?
            .len();
        let sha256 = progress::hash_file(path, size, "reading", json)?.sha256;
        let head = head(path, 16)?;
        if FileKind::sniff(&head) == FileKind::Safetensors || rel.ends_with(".safetensors") {
            let n = SafetensorsFile::header_len(&head)
                .map_err(|e| CliError::failure(None, format!("{}: {e}", path.display())))?;
            let header = self::head(path, n)?;
            let facts = SafetensorsFile::from_header(&header, size)
                .map_err(|e| CliError::failure(None, format!("{}: {e}", path.display())))?;
            draft.add_safetensors(entry(rel, FileRole::Weights, size, sha256)?, facts);
        } else {
            let role = if external.contains(rel) {
                FileRole::Weights
            } else {
                role(rel)
            };
            draft.add_file(entry(rel, role, size, sha256)?);
        }
    }

    let left = draft.to_complete(&meta);
    if left.is_empty() {
        // Complete: it must be valid, or this command has a bug to report.
        draft
            .into_manifest(&meta)
            .map_err(|e| CliError::failure(Some(e.status()), format!("the manifest: {e}")))?;
    }
    let manifest = draft.manifest(&meta);
    let to_complete: Vec<Value> = left
        .iter()
        .map(|t| json!({"field": t.field, "why": t.why}))
        .collect();
    let summary = summary(&draft, &left);
    let own = |file: Option<&Path>| {
        json!({"ok": true, "file": file, "complete": left.is_empty(),
               "to_complete": to_complete, "manifest": manifest})
    };
    match &a.out {
        Some(path) => {
            out::write_atomic(path, &render(&draft, &meta, path)?, false)?;
            Ok(Outcome::ok(
                format!("{}: {summary}", path.display()),
                own(Some(path)),
            ))
        }
        None if json => Ok(Outcome::ok(String::new(), own(None))),
        None => {
            // The manifest on stdout (to redirect), the summary on stderr.
            eprintln!("{summary}");
            let text = serde_json::to_string_pretty(&draft.document(&meta)).unwrap_or_default();
            Ok(Outcome::ok(text, own(None)))
        }
    }
}

fn meta(a: &InitArgs) -> Result<DraftMeta, CliError> {
    let bad = |flag: &str, e: &dyn std::fmt::Display| CliError::usage(format!("--{flag}: {e}"));
    let name = match &a.name {
        Some(n) => n.parse::<Name>().map_err(|e| bad("name", &e))?,
        None => {
            let stem = a
                .from
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            stem.parse::<Name>().map_err(|e| {
                CliError::usage(format!(
                    "{}: the file's name is not a model name ({e}): give --name",
                    a.from.display()
                ))
            })?
        }
    };
    let version: Version = a
        .model_version
        .parse()
        .map_err(|e| bad("model-version", &e))?;
    let created_at: Timestamp = match &a.created_at {
        Some(t) => t.parse().map_err(|e| bad("created-at", &e))?,
        None => jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_err(|e| bad("created-at", &e))?
            .to_string()
            .parse()
            .map_err(|e| bad("created-at", &e))?,
    };
    let mut meta = DraftMeta::new(name, version, created_at);
    meta.channel =
        serde_json::from_value::<Channel>(json!(a.channel)).map_err(|e| bad("channel", &e))?;
    meta.license = a
        .license
        .as_deref()
        .map(str::parse::<License>)
        .transpose()
        .map_err(|e| bad("license", &e))?;
    meta.description = a.description.clone();
    for t in &a.targets {
        let hardware_profile = t.parse::<Name>().map_err(|e| bad("target", &e))?;
        meta.targets.push(Target {
            hardware_profile,
            arch: None,
            accelerators: Vec::new(),
            compute_capability: None,
            runtimes: Default::default(),
            firmware: None,
            min_memory_mb: None,
        });
    }
    Ok(meta)
}

fn is_onnx(rel: &str) -> bool {
    rel.to_ascii_lowercase().ends_with(".onnx")
}

/// The index of the model graph among `files`: the one `.onnx` or TFLite file.
fn graph(from: &Path, files: &[(String, PathBuf)]) -> Result<usize, CliError> {
    let mut found = Vec::new();
    for (i, (rel, path)) in files.iter().enumerate() {
        if is_onnx(rel) || FileKind::sniff(&head(path, 8)?) == FileKind::Tflite {
            found.push(i);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::usage(format!(
            "{}: no ONNX (.onnx) or TFLite model in it",
            from.display()
        ))),
        many => Err(CliError::usage(format!(
            "{}: {} model graphs ({}): a manifest describes one",
            from.display(),
            many.len(),
            many.iter()
                .map(|i| files[*i].0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Up to the first `n` bytes of a file.
fn head(path: &Path, n: usize) -> Result<Vec<u8>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io(path, e))?;
    let mut buf = Vec::new();
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(path, e))?;
    Ok(buf)
}

/// A file's role, from its name.
fn role(rel: &str) -> FileRole {
    let name = rel.rsplit('/').next().unwrap_or(rel).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    if name.starts_with("label") || name.contains("labels") || name == "classes.txt" {
        FileRole::Labels
    } else if name.starts_with("tokenizer") || name == "vocab.txt" || ext == "spm" {
        FileRole::Tokenizer
    } else if name.starts_with("readme") || name.contains("model_card") || name == "modelcard.md" {
        FileRole::ModelCard
    } else if name.contains("calib") {
        FileRole::Calibration
    } else if matches!(ext, "json" | "yaml" | "yml" | "toml" | "cfg" | "ini") {
        FileRole::Config
    } else if matches!(ext, "bin" | "data" | "onnx_data" | "weights" | "pb") {
        FileRole::Weights
    } else {
        FileRole::Other
    }
}

/// The manifest as the output file's form asks: YAML for `.yaml`/`.yml`, else pretty JSON.
fn render(draft: &Draft, meta: &DraftMeta, path: &Path) -> Result<Vec<u8>, CliError> {
    let document = draft.document(meta);
    let mut text = match doc::form(path, b"") {
        Form::Yaml => serde_norway::to_string(&document)
            .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?,
        _ => serde_json::to_string_pretty(&document).unwrap_or_default(),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text.into_bytes())
}

fn summary(draft: &Draft, left: &[ToComplete]) -> String {
    let io = draft.io();
    let mut s = format!(
        "{} model, {} input(s), {} output(s), {} file(s)",
        draft.framework().as_str(),
        io.inputs.len(),
        io.outputs.len(),
        draft.files().len()
    );
    if left.is_empty() {
        s.push_str("; valid (add the metrics you measured)");
    } else {
        s.push_str("; to complete:");
        for t in left {
            s.push_str(&format!("\n  {}: {}", t.field, t.why));
        }
        s.push_str("\n  then: ota manifest validate FILE");
    }
    s
}
