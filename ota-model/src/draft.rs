//! A manifest started from the model: what the model files declare, plus what the user gives,
//! and the list of what is left to complete.

use std::collections::BTreeSet;

use ota_core::manifest::{
    Framework, IoSpec, License, ModelFile, OnnxInfo, Precision, Target, TfliteInfo, Timestamp,
};
use ota_core::{Channel, ModelManifest, Name, ParseError, RuntimeVersion, Version};
use serde_json::{Map, Value, json};

use crate::onnx::OnnxModel;
use crate::safetensors::SafetensorsFile;
use crate::tflite::TfliteModel;

/// What the user says about a model that no model file does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DraftMeta {
    /// The model's name.
    pub name: Name,
    /// Its version.
    pub version: Version,
    /// When it was produced.
    pub created_at: Timestamp,
    /// The release channel (default `stable`).
    pub channel: Channel,
    /// The licence; `None` leaves it to complete.
    pub license: Option<License>,
    /// A one-line description.
    pub description: Option<String>,
    /// The hardware targets; empty leaves them to complete.
    pub targets: Vec<Target>,
}

impl DraftMeta {
    /// The required facts; the channel is `stable`, and licence, description and targets are
    /// left to complete.
    pub fn new(name: Name, version: Version, created_at: Timestamp) -> DraftMeta {
        DraftMeta {
            name,
            version,
            created_at,
            channel: Channel::Stable,
            license: None,
            description: None,
            targets: Vec::new(),
        }
    }
}

/// A field of the manifest the user still has to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToComplete {
    /// Its path (`license`, `targets`, `tflite.min_runtime`).
    pub field: String,
    /// What it needs.
    pub why: String,
}

/// A manifest read from the model's files, waiting for what only the user knows.
///
/// Start it from the model graph ([`Draft::from_onnx`], [`Draft::from_tflite`]), add the other
/// files of the model ([`Draft::add_file`], [`Draft::add_safetensors`]), then write
/// [`Draft::manifest`] and show [`Draft::to_complete`]; when that is empty,
/// [`Draft::into_manifest`] gives the validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    framework: Framework,
    onnx: Option<OnnxInfo>,
    /// For TFLite: the recorded minimum runtime, if any.
    tflite_min_runtime: Option<RuntimeVersion>,
    precision: BTreeSet<Precision>,
    files: Vec<ModelFile>,
    io: IoSpec,
    external_data: Vec<String>,
}

impl Draft {
    /// A draft from an ONNX model and its file's entry (role `engine`: the model graph).
    pub fn from_onnx(file: ModelFile, model: OnnxModel) -> Draft {
        Draft {
            framework: Framework::Onnx,
            onnx: Some(model.info),
            tflite_min_runtime: None,
            precision: model.precision.into_iter().collect(),
            files: vec![file],
            io: model.io,
            external_data: model.external_data,
        }
    }

    /// A draft from a TFLite model and its file's entry.
    pub fn from_tflite(file: ModelFile, model: TfliteModel) -> Draft {
        Draft {
            framework: Framework::Tflite,
            onnx: None,
            tflite_min_runtime: model.min_runtime,
            precision: model.precision.into_iter().collect(),
            files: vec![file],
            io: model.io,
            external_data: Vec::new(),
        }
    }

    /// The files the model graph says it needs besides itself (ONNX external data), relative
    /// to its directory.
    pub fn external_data(&self) -> &[String] {
        &self.external_data
    }

    /// Adds another file of the model.
    pub fn add_file(&mut self, file: ModelFile) {
        self.files.push(file);
    }

    /// Adds a safetensors file: its entry gets the tensor count and dtypes, and its tensors'
    /// precisions join the model's.
    pub fn add_safetensors(&mut self, mut file: ModelFile, facts: SafetensorsFile) {
        file.tensor_count = Some(facts.tensor_count);
        file.dtypes = facts.dtypes;
        self.precision.extend(facts.precision);
        self.files.push(file);
    }

    /// The framework read from the model.
    pub fn framework(&self) -> Framework {
        self.framework
    }

    /// The input and output specification read from the model.
    pub fn io(&self) -> &IoSpec {
        &self.io
    }

    /// The files so far.
    pub fn files(&self) -> &[ModelFile] {
        &self.files
    }

    /// The manifest document: everything read from the model and given in `meta`, in the
    /// manifest's field order, without the fields [`Self::to_complete`] lists.
    pub fn manifest(&self, meta: &DraftMeta) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(meta.name));
        m.insert("version".into(), json!(meta.version.to_string()));
        if let Some(l) = &meta.license {
            m.insert("license".into(), json!(l));
        }
        m.insert("created_at".into(), json!(meta.created_at));
        m.insert("channel".into(), json!(meta.channel));
        if let Some(d) = &meta.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("framework".into(), json!(self.framework));
        match self.framework {
            Framework::Onnx => {
                m.insert("onnx".into(), json!(self.onnx));
            }
            Framework::Tflite => {
                let block = match self.tflite_min_runtime {
                    Some(min_runtime) => json!(TfliteInfo {
                        min_runtime,
                        delegates: Vec::new(),
                    }),
                    None => json!({"delegates": []}),
                };
                m.insert("tflite".into(), block);
            }
            _ => {}
        }
        m.insert("precision".into(), json!(self.precision));
        m.insert("files".into(), json!(self.files));
        m.insert("io".into(), json!(self.io));
        m.insert("metrics".into(), json!([]));
        m.insert("targets".into(), json!(meta.targets));
        Value::Object(m)
    }

    /// What the user still has to fill in before the manifest is valid, in field order.
    pub fn to_complete(&self, meta: &DraftMeta) -> Vec<ToComplete> {
        let mut left = Vec::new();
        let mut need = |field: &str, why: &str| {
            left.push(ToComplete {
                field: field.into(),
                why: why.into(),
            })
        };
        if meta.license.is_none() {
            need(
                "license",
                "the licence, as an SPDX expression: no model file records it",
            );
        }
        if self.framework == Framework::Tflite && self.tflite_min_runtime.is_none() {
            need(
                "tflite.min_runtime",
                "the oldest TFLite runtime it runs on: the model records no min_runtime_version",
            );
        }
        if self.precision.is_empty() {
            need(
                "precision",
                "the precisions it computes in: its tensors are integers only",
            );
        }
        if meta.targets.is_empty() {
            need(
                "targets",
                "at least one hardware target (a hardware profile such as generic-arm64)",
            );
        }
        left
    }

    /// The validated manifest, once nothing is left to complete; otherwise the parse error
    /// naming the first field that is missing or invalid.
    pub fn into_manifest(&self, meta: &DraftMeta) -> Result<ModelManifest, ParseError> {
        ModelManifest::from_json(self.manifest(meta).to_string().as_bytes())
    }
}
