//! Checkpoints in safetensors, named and laid out as PyTorch's `nn.Sequential` of `nn.Linear`
//! layers would save them (`encoder.0.weight` is `[out, in]`; activations take the odd
//! indices), so they load into PyTorch without renaming. The model spec is stored as JSON under
//! the metadata key `hourglass.spec`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};
use crate::io::write_atomic;
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
    let expected: Vec<&str> = layout.tensors().map(|t| t.name.as_str()).collect();
    if let Some(extra) = st.names().into_iter().find(|n| !expected.contains(n)) {
        return Err(format!("tensor '{extra}' is not part of the model spec"));
    }
    Ok((spec, Parameters { layout, arena }))
}
