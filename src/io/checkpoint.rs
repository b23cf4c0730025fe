//! Checkpoints in safetensors, named and laid out as PyTorch's `nn.Sequential` of `nn.Linear`
//! layers would save them (`encoder.0.weight` is `[out, in]`; activations take the odd
//! indices), so they load into PyTorch without renaming; a tied decoder layer's weight is
//! written as a transposed copy too (see [`super::tied`]), so a strict `load_state_dict`
//! finds every tensor. The model spec is stored as JSON under the metadata key `hourglass.spec`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};
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
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| Error::Config(format!("serializing the checkpoint: {e}")))
}

/// Writes a checkpoint atomically (temporary file, then rename).
pub fn save(path: &Path, spec: &ModelSpec, params: &Parameters) -> Result<()> {
    write_atomic(path, &to_bytes(spec, params)?)
}

/// Reads a checkpoint: its spec and parameters, with every tensor checked against the spec.
pub fn load(path: &Path) -> Result<(ModelSpec, Parameters)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| Error::Config(format!("serializing the training state: {e}")))?;
    write_atomic(path, &bytes)
}

/// Reads a training state written by [`save_state`]: spec, state and all metadata.
pub fn load_state(
    path: &Path,
) -> Result<(ModelSpec, crate::train::TrainState, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::bad_file(path, reason);
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let step: u64 = metadata
        .get(STEP_KEY)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no '{STEP_KEY}' metadata: not a training state")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("malformed: {e}")))?;
    let mut optimizer = Vec::new();
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
    let loss_scale = match st.tensor(LOSS_SCALE_TENSOR) {
        Ok(view) if view.dtype() == Dtype::F32 => Some(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Ok(_) => return Err(bad("the loss scale is not F32".into())),
        Err(_) => None,
    };
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
