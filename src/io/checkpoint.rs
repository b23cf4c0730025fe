//! Checkpoints in safetensors, named and laid out as PyTorch's `nn.Sequential` of `nn.Linear`
//! layers would save them (`encoder.0.weight` is `[out, in]`; activations take the odd
//! indices), so they load into PyTorch without renaming; a tied decoder layer's weight is
//! written as a transposed copy too (see [`super::tied`]), so a strict `load_state_dict`
//! finds every tensor. The model spec is stored as JSON under the metadata key `hourglass.spec`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};
use crate::io::read::{Limits, read_safetensors};

use crate::io::{tied, write_atomic};
use crate::model::{ModelSpec, ParamLayout, Parameters};

/// Metadata key of the model spec JSON.
pub const SPEC_KEY: &str = "hourglass.spec";

/// Serializes `spec` and `params` to safetensors bytes.
pub fn to_bytes(spec: &ModelSpec, params: &Parameters) -> Result<Vec<u8>> {
    let mut tensors = Vec::new();
    for t in params.layout.tensors() {
        let bytes: &[u8] = bytemuck::cast_slice(params.tensor(t));
        let view = TensorView::new(Dtype::F32, t.shape.clone(), bytes)
            .map_err(|e| Error::Config(format!("tensor {}: {e}", t.name)))?;
        tensors.push((t.name.clone(), view));
    }
    let copies = tied::copies(params);
    for c in &copies {
        let view = TensorView::new(Dtype::F32, c.shape.clone(), bytemuck::cast_slice(&c.values))
            .map_err(|e| Error::Config(format!("tensor {}: {e}", c.name)))?;
        tensors.push((c.name.clone(), view));
    }
    let metadata = HashMap::from([
        (SPEC_KEY.to_string(), spec.to_json()),
        ("format".to_string(), "pt".to_string()),
    ]);
    serialize_sorted(tensors, metadata)
        .map_err(|e| Error::Config(format!("serializing the checkpoint: {e}")))
}

/// `safetensors::serialize` with the metadata keys in sorted order, so that saving the same
/// tensors and metadata twice gives the same bytes (the crate takes a `HashMap`, whose order
/// changes from one process to the next). The sorted object has the same length as the one
/// the crate wrote, so the header's size and every tensor offset stay as they are.
fn serialize_sorted(
    tensors: Vec<(String, TensorView<'_>)>,
    metadata: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    // A clone iterates in the same order as its original, which is the order the crate writes.
    let as_written = serde_json::to_string(&metadata).ok();
    let sorted: std::collections::BTreeMap<&String, &String> = metadata.iter().collect();
    let sorted = serde_json::to_string(&sorted).ok();
    let mut bytes = safetensors::serialize(tensors, Some(metadata.clone()))?;
    if let (Some(from), Some(to)) = (as_written, sorted) {
        let header_len = bytes.get(..8).map_or(0, |b| {
            u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize
        });
        let header_end = 8usize.saturating_add(header_len).min(bytes.len());
        let header = &bytes[8..header_end];
        if from.len() == to.len() {
            if let Some(at) = header
                .windows(from.len())
                .position(|w| w == from.as_bytes())
            {
                bytes[8 + at..8 + at + to.len()].copy_from_slice(to.as_bytes());
            }
        }
    }
    Ok(bytes)
}

/// Writes a checkpoint atomically (temporary file, then rename).
pub fn save(path: &Path, spec: &ModelSpec, params: &Parameters) -> Result<()> {
    write_atomic(path, &to_bytes(spec, params)?)
}

/// Reads a checkpoint: its spec and parameters, with every tensor checked against the spec.
pub fn load(path: &Path) -> Result<(ModelSpec, Parameters)> {
    let bytes = read_safetensors(path, &Limits::new(None, ""))?;
    from_bytes(&bytes).map_err(|reason| Error::bad_file(path, reason))
}

/// Parses checkpoint bytes; the error is a reason without the path.
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<(ModelSpec, Parameters), String> {
    from_bytes_filtered(bytes, |_| true)
}

/// As [`from_bytes`], checking for unexpected tensors only among names `model_tensor` accepts.
fn from_bytes_filtered(
    bytes: &[u8],
    model_tensor: impl Fn(&str) -> bool,
) -> std::result::Result<(ModelSpec, Parameters), String> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a safetensors checkpoint: {e}"))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or(format!(
            "no '{SPEC_KEY}' metadata: not a checkpoint written by hourglass"
        ))?;
    let spec = ModelSpec::from_json(json).map_err(|e| e.to_string())?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("malformed safetensors: {e}"))?;
    let layout = ParamLayout::new(&spec);
    // The spec may lie: every tensor's shape is checked against it before the arena the spec
    // sizes is allocated.
    for t in layout.tensors() {
        let view = st
            .tensor(&t.name)
            .map_err(|_| format!("tensor '{}' is missing", t.name))?;
        if view.shape() != t.shape.as_slice() {
            return Err(format!(
                "tensor '{}' has shape {:?} but the spec needs {:?}",
                t.name,
                view.shape(),
                t.shape
            ));
        }
    }
    let mut arena = vec![0.0f32; layout.len];
    for t in layout.tensors() {
        let view = st
            .tensor(&t.name)
            .map_err(|_| format!("tensor '{}' is missing", t.name))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor '{}' is {:?}, expected F32",
                t.name,
                view.dtype()
            ));
        }
        if view.shape() != t.shape.as_slice() {
            return Err(format!(
                "tensor '{}' has shape {:?} but the spec needs {:?}",
                t.name,
                view.shape(),
                t.shape
            ));
        }
        // safetensors data need not be 4-byte aligned in memory: decode bytewise.
        for (dst, src) in arena[t.offset..t.offset + t.len()]
            .iter_mut()
            .zip(view.data().chunks_exact(4))
        {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        non_finite(&t.name, &arena[t.offset..t.offset + t.len()])?;
    }
    let params = Parameters { layout, arena };
    let copies = tied::names(&params);
    let expected: Vec<&str> = params.layout.tensors().map(|t| t.name.as_str()).collect();
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|n| model_tensor(n) && !expected.contains(n) && !copies.iter().any(|c| c == *n))
    {
        return Err(format!("tensor '{extra}' is not part of the model spec"));
    }
    tied::check(&st, &params)?;
    Ok((spec, params))
}

/// Refuses a tensor holding NaN or an infinity, naming it and the first bad element.
fn non_finite(name: &str, values: &[f32]) -> std::result::Result<(), String> {
    match crate::limits::first_non_finite(values) {
        Some((i, v)) => Err(format!(
            "tensor '{name}' holds a non-finite value ({v} at element {i}); the checkpoint is unusable"
        )),
        None => Ok(()),
    }
}

/// The tensor of a mixed-precision run's loss-scale state in a training-state file.
pub const LOSS_SCALE_TENSOR: &str = "loss_scale";

/// Metadata key of the training step in a training-state file.
pub const STEP_KEY: &str = "hourglass.step";

/// Writes a training state (parameters under their usual names, plus the optimizer arenas as
/// `optimizer.K` and the step) so that `--resume` continues exactly. `extra` metadata (e.g. the
/// resolved configuration) is stored alongside.
pub fn save_state(
    path: &Path,
    spec: &ModelSpec,
    state: &crate::train::TrainState,
    extra: &[(&str, String)],
) -> Result<()> {
    let mut tensors = Vec::new();
    for t in state.params.layout.tensors() {
        let view = TensorView::new(
            Dtype::F32,
            t.shape.clone(),
            bytemuck::cast_slice(state.params.tensor(t)),
        )
        .map_err(|e| Error::Config(format!("tensor {}: {e}", t.name)))?;
        tensors.push((t.name.clone(), view));
    }
    for (k, arena) in state.optimizer.iter().enumerate() {
        let view = TensorView::new(Dtype::F32, vec![arena.len()], bytemuck::cast_slice(arena))
            .map_err(|e| Error::Config(format!("optimizer state: {e}")))?;
        tensors.push((format!("optimizer.{k}"), view));
    }
    if let Some(scale) = &state.loss_scale {
        let view = TensorView::new(Dtype::F32, vec![scale.len()], bytemuck::cast_slice(scale))
            .map_err(|e| Error::Config(format!("loss scale: {e}")))?;
        tensors.push((LOSS_SCALE_TENSOR.to_string(), view));
    }
    let mut metadata = HashMap::from([
        (SPEC_KEY.to_string(), spec.to_json()),
        (STEP_KEY.to_string(), state.step.to_string()),
    ]);
    for (k, v) in extra {
        metadata.insert((*k).to_string(), v.clone());
    }
    let bytes = serialize_sorted(tensors, metadata)
        .map_err(|e| Error::Config(format!("serializing the training state: {e}")))?;
    write_atomic(path, &bytes)
}

/// Reads a training state written by [`save_state`]: spec, state and all metadata.
pub fn load_state(
    path: &Path,
) -> Result<(ModelSpec, crate::train::TrainState, HashMap<String, String>)> {
    let bytes = read_safetensors(path, &Limits::new(None, ""))?;
    let bad = |reason: String| Error::bad_file(path, reason);
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let step: u64 = metadata
        .get(STEP_KEY)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no '{STEP_KEY}' metadata: not a training state")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("malformed: {e}")))?;
    let mut optimizer: Vec<Vec<f32>> = Vec::new();
    while let Ok(view) = st.tensor(&format!("optimizer.{}", optimizer.len())) {
        if view.dtype() != Dtype::F32 {
            return Err(bad("optimizer state is not F32".into()));
        }
        optimizer.push(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
    }
    let loss_scale: Option<Vec<f32>> = match st.tensor(LOSS_SCALE_TENSOR) {
        Ok(view) if view.dtype() == Dtype::F32 => Some(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Ok(_) => return Err(bad("the loss scale is not F32".into())),
        Err(_) => None,
    };
    for (k, arena) in optimizer.iter().enumerate() {
        non_finite(&format!("optimizer.{k}"), arena).map_err(bad)?;
    }
    if let Some(scale) = &loss_scale {
        non_finite(LOSS_SCALE_TENSOR, scale).map_err(bad)?;
    }
    // Every tensor but the optimizer arenas and the loss scale must be one of the model's.
    let (spec, params) = from_bytes_filtered(&bytes, |n| {
        !n.starts_with("optimizer.") && n != LOSS_SCALE_TENSOR
    })
    .map_err(bad)?;
    Ok((
        spec,
        crate::train::TrainState {
            step,
            params,
            optimizer,
            loss_scale,
        },
        metadata,
    ))
}
