//! A manifest started from the model: what the model files declare, plus what the user gives,
//! and the list of what is left to complete.

use std::collections::BTreeSet;

use ota_core::manifest::{
    Delegate, Framework, IoSpec, License, Metric, ModelFile, OnnxInfo, Precision, Target, Timestamp,
};
use ota_core::{Channel, ModelManifest, Name, ParseError, RuntimeVersion, Version};
use serde::Serialize;
use serde_json::Value;

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

    /// The manifest document: everything read from the model and given in `meta`, without
    /// the fields [`Self::to_complete`] lists. Serialize it with serde (JSON, YAML): its fields
    /// come in the manifest's order.
    pub fn document<'a>(&'a self, meta: &'a DraftMeta) -> Document<'a> {
        Document {
            name: &meta.name,
            version: &meta.version,
            license: meta.license.as_ref(),
            created_at: &meta.created_at,
            channel: meta.channel,
            description: meta.description.as_deref(),
            framework: self.framework,
            onnx: self.onnx.as_ref(),
            tflite: (self.framework == Framework::Tflite).then_some(TfliteBlock {
                min_runtime: self.tflite_min_runtime,
                delegates: Vec::new(),
            }),
            precision: &self.precision,
            files: &self.files,
            io: &self.io,
            metrics: Vec::new(),
            targets: &meta.targets,
        }
    }

    /// [`Self::document`] as a JSON value.
    pub fn manifest(&self, meta: &DraftMeta) -> Value {
        serde_json::to_value(self.document(meta)).unwrap_or_default()
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

/// A draft's manifest document, in the manifest's field order (see [`Draft::document`]).
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    name: &'a Name,
    version: &'a Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a License>,
    created_at: &'a Timestamp,
    channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    framework: Framework,
    #[serde(skip_serializing_if = "Option::is_none")]
    onnx: Option<&'a OnnxInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tflite: Option<TfliteBlock>,
    precision: &'a BTreeSet<Precision>,
    files: &'a [ModelFile],
    io: &'a IoSpec,
    metrics: Vec<Metric>,
    targets: &'a [Target],
}

/// The `tflite` block, whose `min_runtime` may be left to complete.
#[derive(Debug, Serialize)]
struct TfliteBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    min_runtime: Option<RuntimeVersion>,
    delegates: Vec<Delegate>,
}
