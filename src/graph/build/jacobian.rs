//! The encoder's Jacobian ∂h/∂x, pulled back from the code to the input through every layer:
//! the Jacobian graph computes it exactly for analysis (`tangents`), and the contractive
//! penalty runs the same pull-back on the code-space basis or on random projections.

use crate::graph::build::layer::{Layer, chain, last_activation, stack};
use crate::graph::{Epilogue, Graph, Op, Tensor};
use crate::model::{ModelSpec, ParamLayout, Role};

/// The encoder's Jacobians ∂h/∂x at a batch of inputs.
#[derive(Clone, Debug)]
pub struct JacobianGraph {
    /// The ops and buffers.
    pub graph: Graph,
    /// Where each parameter sits in the arena.
    pub layout: ParamLayout,
    /// Parameter arena.
    pub params: Tensor,
    /// `[B, D]` inputs, written by the caller.
    pub input: Tensor,
    /// `[c·B, D]`: row `k·B + b` is row k of example b's Jacobian (∂h_k/∂x).
    pub jacobian: Tensor,
}

/// A graph computing the exact encoder Jacobian of every example of a batch (not for VAEs).
pub fn build_jacobian_graph(spec: &ModelSpec, batch: usize) -> JacobianGraph {
    let layout = ParamLayout::new(spec);
    let mut g = Graph::default();
    let params = g.matrix("params", 1, layout.len);
    let input = g.matrix("input", batch, spec.input_dim());
    let jacobian = {
        let enc = stack(&layout, Role::Encoder);
        let h = chain(&mut g, params, &enc, input, last_activation(&enc));
        pull_back(&mut g, params, &enc, &h, batch, None).0[0]
    };
    g.update_start = g.ops.len();
    JacobianGraph {
        jacobian,
        graph: g,
        layout,
        params,
        input,
    }
}

/// Directions u (`[K·B, c]`, row k·B + b; the code-space basis when `projections` is `None`)
/// pulled back through the encoder `enc` with outputs `h`: `r[l]` is uᵀ ∂h/∂(layer l's
/// output), `r[0]` is uᵀJ at the input, and `ra[l] = r[l] ⊙ act'(h_l)`. Returns (r, ra),
/// indexed by layer, 0 = input.
pub(super) fn pull_back(
    g: &mut Graph,
    params: Tensor,
    enc: &[Box<dyn Layer + '_>],
    h: &[Tensor],
    batch: usize,
    projections: Option<u32>,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let code = enc.last().expect("an encoder has layers").spec().outputs;
    let kb = projections.map_or(code, |p| p as usize) * batch;
    let u = g.matrix("jacobian.directions", kb, code);
    g.push(Op::Directions {
        out: u,
        batch,
        exact: projections.is_none(),
    });
    // r_L = u, ra_l = r_l ⊙ act'(h_l), r_{l-1} = ra_l · W_l.
    let n = enc.len();
    let mut r = vec![u; n + 1];
    let mut ra = vec![u; n + 1];
    for l in (1..=n).rev() {
        let layer = &enc[l - 1];
        let spec = layer.spec();
        ra[l] = g.matrix(format!("jacobian.ra{l}"), kb, spec.outputs);
        g.push(Op::TangentScale {
            r: r[l],
            y: h[l - 1],
            act: spec.activation,
            out: ra[l],
        });
        r[l - 1] = g.matrix(format!("jacobian.r{}", l - 1), kb, spec.inputs);
        layer.input_grad(g, params, ra[l], r[l - 1], Epilogue::Store, false);
    }
    (r, ra)
}
