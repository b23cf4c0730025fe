//! The CPU reference executor: runs a [`Graph`] op by op with the twins in [`kernels`].

pub mod conv;
mod conv_ops;
pub mod conv_reference;
pub mod gemm;
pub mod kernels;
pub mod psd;
pub mod regularizers;
pub mod vmath;

use std::ops::Range;

pub use gemm::set_openblas_serial;

use crate::error::{Error, Result};
use crate::graph::{
    BufId, DType, Epilogue, Graph, Guard, Op, Operand, Segment, StepParams, Tensor,
};
use kernels::{AdamHyper, CpuEpilogue, Real};

/// How this build runs the executor's kernels on this CPU, for reports: the GEMM, the vector
/// width of the element-wise kernels and the threads, e.g. "OpenBLAS products, AVX-512
/// element-wise kernels, 2 threads".
pub fn describe() -> String {
    format!(
        "{} products, {} element-wise kernels, {} threads",
        gemm::f32_products(),
        vmath::widest_available(),
        rayon::current_num_threads()
    )
}

/// Time the CPU executor spent in one op of its graph, over the steps since
/// [`CpuExecutor::profile`] began recording.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpTime {
    /// The op's index in the graph.
    pub index: usize,
    /// What the op is, e.g. `matmul 256x784 · (512x784)ᵀ -> 256x512, bias + relu`.
    pub op: String,
    /// Times it ran.
    pub calls: u64,
    /// Its fastest run, in milliseconds (the figure least disturbed by other work).
    pub min_ms: f64,
    /// Its mean run, in milliseconds.
    pub mean_ms: f64,
}

/// A short description of `op` for profiles.
fn op_label(op: &Op) -> String {
    match op {
        Op::Matmul {
            a,
            b,
            c,
            trans_a,
            trans_b,
            epilogue,
            ..
        } => {
            let operand = |t: &Tensor, trans: bool| {
                let shape = format!("{}x{}", t.rows, t.cols);
                if trans {
                    format!("({shape})ᵀ")
                } else {
                    shape
                }
            };
            let finish = match epilogue {
                Epilogue::Store => String::new(),
                Epilogue::Accumulate => ", accumulate".into(),
                Epilogue::BiasAct { act, .. } => format!(", bias + {act:?}").to_lowercase(),
                Epilogue::ActGrad { act, .. } => format!(", · {act:?}'").to_lowercase(),
                Epilogue::AccumulateActGrad { act, .. } => {
                    format!(", accumulate · {act:?}'").to_lowercase()
                }
            };
            format!(
                "matmul {} · {} -> {}x{}{finish}",
                operand(a, *trans_a),
                operand(b, *trans_b),
                c.rows,
                c.cols
            )
        }
        Op::Conv2d { .. } | Op::Conv2dInputGrad { .. } | Op::Conv2dWeightGrad { .. } => {
            conv_ops::label(op)
        }
        // The variant's name: what Debug prints before its fields.
        other => other.name(),
    }
}

enum Storage<T> {
    Float(Vec<T>),
    Index(Vec<u32>),
}

/// Executes a graph on the host in `T` precision.
pub struct CpuExecutor<T: Real = f32> {
    graph: Graph,
    bufs: Vec<Storage<T>>,
    /// Per op while profiling: runs, fastest and total seconds.
    times: Option<Vec<(u64, f64, f64)>>,
    /// Scratch of the conv twins, sized once for the graph's conv ops.
    conv: conv::ConvScratch<T>,
}

impl<T: Real> CpuExecutor<T> {
    /// Allocates every buffer of `graph`, zeroed. An error when the graph fails
    /// [`Graph::validate`].
    pub fn new(graph: Graph) -> Result<Self> {
        graph
            .validate()
            .map_err(|e| Error::Config(format!("invalid graph: {e}")))?;
        let bufs = graph
            .buffers
            .iter()
            .map(|b| match b.dtype {
                DType::F32 => Storage::Float(vec![T::zero(); b.len]),
                DType::U32 => Storage::Index(vec![0; b.len]),
            })
            .collect();
        let shapes: Vec<_> = graph.ops.iter().filter_map(conv_ops::shape).collect();
        let conv = conv::ConvScratch::new(&shapes, rayon::current_num_threads());
        Ok(CpuExecutor {
            graph,
            bufs,
            times: None,
            conv,
        })
    }

    /// Starts recording how long each op takes (again from zero if it already was); read the
    /// record with [`CpuExecutor::op_times`]. Costs two clock reads per op.
    pub fn profile(&mut self) {
        self.times = Some(vec![(0, f64::INFINITY, 0.0); self.graph.ops.len()]);
    }

    /// Per op that ran since [`CpuExecutor::profile`], in graph order; empty when not profiling.
    pub fn op_times(&self) -> Vec<OpTime> {
        let Some(times) = &self.times else {
            return Vec::new();
        };
        times
            .iter()
            .enumerate()
            .filter(|(_, t)| t.0 > 0)
            .map(|(index, &(calls, min, total))| OpTime {
                index,
                op: op_label(&self.graph.ops[index]),
                calls,
                min_ms: 1e3 * min,
                mean_ms: 1e3 * total / calls as f64,
            })
            .collect()
    }

    /// The graph being executed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The storage of `buf`, or an error naming what is wrong with the id.
    fn storage(&self, buf: BufId) -> Result<&Storage<T>> {
        self.bufs.get(buf).ok_or_else(|| {
            Error::Config(format!(
                "buffer {buf} does not exist (the graph has {})",
                self.bufs.len()
            ))
        })
    }

    fn name(&self, buf: BufId) -> &str {
        self.graph.buffers.get(buf).map_or("?", |b| b.name.as_str())
    }

    fn wrong_dtype(&self, buf: BufId, holds: &str) -> Error {
        Error::Config(format!("buffer {buf} ('{}') holds {holds}", self.name(buf)))
    }

    fn too_long(&self, buf: BufId, given: usize, len: usize) -> Error {
        Error::Config(format!(
            "{given} values do not fit buffer {buf} ('{}') of {len}",
            self.name(buf)
        ))
    }

    /// Overwrites the start of a float buffer. An error when `buf` does not exist, holds
    /// indices, or is shorter than `data`.
    pub fn write(&mut self, buf: BufId, data: &[T]) -> Result<()> {
        let len = match self.storage(buf)? {
            Storage::Float(v) => v.len(),
            Storage::Index(_) => return Err(self.wrong_dtype(buf, "indices")),
        };
        if data.len() > len {
            return Err(self.too_long(buf, data.len(), len));
        }
        if let Storage::Float(v) = &mut self.bufs[buf] {
            v[..data.len()].copy_from_slice(data);
        }
        Ok(())
    }

    /// Overwrites the start of an index buffer (errors as for [`CpuExecutor::write`]).
    pub fn write_u32(&mut self, buf: BufId, data: &[u32]) -> Result<()> {
        let len = match self.storage(buf)? {
            Storage::Index(v) => v.len(),
            Storage::Float(_) => return Err(self.wrong_dtype(buf, "floats")),
        };
        if data.len() > len {
            return Err(self.too_long(buf, data.len(), len));
        }
        if let Storage::Index(v) = &mut self.bufs[buf] {
            v[..data.len()].copy_from_slice(data);
        }
        Ok(())
    }

    /// A float buffer's contents; an error when `buf` does not exist or holds indices.
    pub fn read(&self, buf: BufId) -> Result<&[T]> {
        match self.storage(buf)? {
            Storage::Float(v) => Ok(v),
            Storage::Index(_) => Err(self.wrong_dtype(buf, "indices")),
        }
    }

    /// The elements of a view (errors as for [`CpuExecutor::read`], and when the view runs
    /// past its buffer).
    pub fn view(&self, t: Tensor) -> Result<&[T]> {
        let v = self.read(t.buf)?;
        v.get(t.offset..t.end())
            .ok_or_else(|| self.past_end(t, v.len()))
    }

    /// The indices of a view (errors as for [`CpuExecutor::view`]).
    pub fn view_u32(&self, t: Tensor) -> Result<&[u32]> {
        let v = match self.storage(t.buf)? {
            Storage::Index(v) => v,
            Storage::Float(_) => return Err(self.wrong_dtype(t.buf, "floats")),
        };
        v.get(t.offset..t.end())
            .ok_or_else(|| self.past_end(t, v.len()))
    }

    fn past_end(&self, t: Tensor, len: usize) -> Error {
        Error::Config(format!(
            "a view of elements {}..{} runs past buffer {} ('{}') of {len}",
            t.offset,
            t.end(),
            t.buf,
            self.name(t.buf)
        ))
    }

    /// A view of a float buffer of the validated graph (ops only name views that exist).
    fn floats(&self, t: Tensor) -> &[T] {
        match &self.bufs[t.buf] {
            Storage::Float(v) => &v[t.offset..t.end()],
            Storage::Index(_) => unreachable!("Graph::validate checks every op's dtypes"),
        }
    }

    fn indices(&self, t: Tensor) -> &[u32] {
        match &self.bufs[t.buf] {
            Storage::Index(v) => &v[t.offset..t.end()],
            Storage::Float(_) => unreachable!("Graph::validate checks every op's dtypes"),
        }
    }

    fn take(&mut self, buf: BufId) -> Vec<T> {
        match &mut self.bufs[buf] {
            Storage::Float(v) => std::mem::take(v),
            Storage::Index(_) => unreachable!("Graph::validate checks every op's dtypes"),
        }
    }

    fn put(&mut self, buf: BufId, v: Vec<T>) {
        self.bufs[buf] = Storage::Float(v);
    }

    /// An epilogue with its operand's elements.
    fn epilogue(&self, epilogue: Epilogue) -> CpuEpilogue<'_, T> {
        match epilogue {
            Epilogue::Store => CpuEpilogue::Store,
            Epilogue::Accumulate => CpuEpilogue::Accumulate,
            Epilogue::BiasAct { bias, act } => CpuEpilogue::BiasAct(self.floats(bias), act),
            Epilogue::ActGrad { y, act } => CpuEpilogue::ActGrad(self.floats(y), act),
            Epilogue::AccumulateActGrad { y, act } => {
                CpuEpilogue::AccumulateActGrad(self.floats(y), act)
            }
        }
    }

    /// The gradient scale of an optimizer step under `guard` (`None`: skip the step).
    fn guard_scale(&self, guard: Option<Guard>) -> Option<T> {
        match guard {
            Some(g) => kernels::guard_scale(self.floats(g.norm_sq)[0], g.max_norm),
            None => Some(T::one()),
        }
    }

    /// Runs `ops` once for each step in `steps`; an error (and nothing run) when `ops` is not
    /// a range of the graph's ops.
    pub fn run(&mut self, ops: Range<usize>, steps: &[StepParams]) -> Result<()> {
        self.run_segments(&[Segment { ops, steps }])
    }

    /// Runs each segment's ops once for each of its steps, the segments in order (the GPU's
    /// one submission of them); an error, and nothing run, when a segment's ops are not a
    /// range of the graph's ops.
    pub fn run_segments(&mut self, segments: &[Segment<'_>]) -> Result<()> {
        self.graph.check_segments(segments)?;
        for s in segments {
            self.run_ops(s.ops.clone(), s.steps);
        }
        Ok(())
    }

    fn run_ops(&mut self, ops: Range<usize>, steps: &[StepParams]) {
        // The kernels' parallel loops start cheapest from one of rayon's own threads (a job on
        // its local queue) rather than from outside the pool (injected, then waited for on a
        // condvar, once per op): the steps run there. 7% off a median mnist_ae step.
        if rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.run_ops(ops, steps));
        }
        for s in steps {
            for i in ops.clone() {
                let op = self.graph.ops[i].clone();
                let start = self.times.is_some().then(std::time::Instant::now);
                self.run_op(&op, s);
                if let (Some(start), Some(times)) = (start, &mut self.times) {
                    let (calls, min, total) = &mut times[i];
                    let t = start.elapsed().as_secs_f64();
                    (*calls, *min, *total) = (*calls + 1, min.min(t), *total + t);
                }
            }
        }
    }

    fn run_op(&mut self, op: &Op, s: &StepParams) {
        // Outputs are taken out of the buffer list while the op runs, so inputs can be borrowed
        // alongside; `Graph::validate` guarantees they are different buffers.
        match *op {
            Op::Gather { data, order, out } => {
                let mut o = self.take(out.buf);
                kernels::gather(
                    self.floats(data),
                    data.cols,
                    self.indices(order),
                    s.batch_start as usize,
                    &mut o[out.offset..out.end()],
                );
                self.put(out.buf, o);
            }
            Op::Matmul {
                a,
                b,
                c,
                trans_a,
                trans_b,
                epilogue,
                gradient,
                loss_scale,
            } => {
                let mut o = self.take(c.buf);
                // Mixed precision: operands rounded to f16 (the gradient one under the loss
                // scale); an operand beyond f16 poisons the product, as on the GPU.
                let rounded = loss_scale.map(|st| {
                    let scale = self.floats(st)[0].to_f64() as f32;
                    let half = |t: Tensor, op: Operand| {
                        kernels::half_operand(
                            self.floats(t),
                            (gradient == Some(op)).then_some(scale),
                        )
                    };
                    match (half(a, Operand::A), half(b, Operand::B)) {
                        (Some(a), Some(b)) => (a, b),
                        _ => (vec![T::nan(); a.len()], self.floats(b).to_vec()),
                    }
                });
                let (av, bv) = match &rounded {
                    Some((a, b)) => (&a[..], &b[..]),
                    None => (self.floats(a), self.floats(b)),
                };
                let ep = self.epilogue(epilogue);
                kernels::matmul(
                    av,
                    (a.rows, a.cols),
                    trans_a,
                    bv,
                    (b.rows, b.cols),
                    trans_b,
                    &mut o[c.offset..c.end()],
                    ep,
                )
                .expect("Graph::validate checks every product's shapes");
                self.put(c.buf, o);
            }
            Op::Activation { x, y, act } => {
                let mut o = self.take(y.buf);
                kernels::activation_forward(act, self.floats(x), &mut o[y.offset..y.end()]);
                self.put(y.buf, o);
            }
            Op::ActivationGrad { dy, y, dx, act } => {
                let mut o = self.take(dx.buf);
                kernels::activation_backward(
                    act,
                    self.floats(dy),
                    self.floats(y),
                    &mut o[dx.offset..dx.end()],
                );
                self.put(dx.buf, o);
            }
            Op::ColumnSum { x, out, accumulate } => {
                let mut o = self.take(out.buf);
                kernels::column_sum(
                    self.floats(x),
                    x.cols,
                    &mut o[out.offset..out.end()],
                    accumulate,
                );
                self.put(out.buf, o);
            }
            Op::Conv2d { .. }
            | Op::Conv2dInputGrad { .. }
            | Op::Conv2dWeightGrad { .. }
            | Op::ChannelSum { .. } => self.run_conv(op),
            Op::ReconstructionLoss {
                logits,
                target,
                grad,
                row_loss,
                loss,
                output,
            } => {
                let mut g = self.take(grad.buf);
                let mut l = self.take(row_loss.buf);
                kernels::reconstruction_loss(
                    loss,
                    output,
                    self.floats(logits),
                    self.floats(target),
                    logits.cols,
                    &mut g[grad.offset..grad.end()],
                    &mut l[row_loss.offset..row_loss.end()],
                );
                self.put(grad.buf, g);
                self.put(row_loss.buf, l);
            }
            Op::Corrupt { x, out, noise } => {
                let mut o = self.take(out.buf);
                regularizers::corrupt(
                    noise,
                    s,
                    out.cols,
                    self.floats(x),
                    &mut o[out.offset..out.end()],
                );
                self.put(out.buf, o);
            }
            Op::Directions { out, batch, exact } => {
                let mut o = self.take(out.buf);
                regularizers::directions(s, out.cols, batch, exact, &mut o[out.offset..out.end()]);
                self.put(out.buf, o);
            }
            Op::TangentScale { r, y, act, out } => {
                let mut o = self.take(out.buf);
                regularizers::tangent_scale(
                    act,
                    self.floats(r),
                    self.floats(y),
                    r.cols,
                    &mut o[out.offset..out.end()],
                );
                self.put(out.buf, o);
            }
            Op::Curvature { qa, r, y, act, out } => {
                let mut o = self.take(out.buf);
                regularizers::curvature(
                    act,
                    self.floats(qa),
                    self.floats(r),
                    self.floats(y),
                    &mut o[out.offset..out.end()],
                );
                self.put(out.buf, o);
            }
            Op::JacobianNorm {
                r,
                rows,
                grad,
                scale,
            } => {
                let (mut ro, mut g) = (self.take(rows.buf), self.take(grad.buf));
                regularizers::jacobian_norm(
                    scale,
                    self.floats(r),
                    r.cols,
                    &mut ro[rows.offset..rows.end()],
                    &mut g[grad.offset..grad.end()],
                );
                self.put(rows.buf, ro);
                self.put(grad.buf, g);
            }
            Op::ContractiveClosedForm {
                h,
                w,
                rows,
                dz,
                dw,
                scratch,
                lambda,
            } => {
                let (mut ro, mut dzb, mut dwb, mut sc) = (
                    self.take(rows.buf),
                    self.take(dz.buf),
                    self.take(dw.buf),
                    self.take(scratch.buf),
                );
                regularizers::contractive_closed_form(
                    lambda,
                    self.floats(h),
                    self.floats(w),
                    w.cols,
                    &mut ro[rows.offset..rows.end()],
                    &mut dzb[dz.offset..dz.end()],
                    &mut dwb[dw.offset..dw.end()],
                    &mut sc[scratch.offset..scratch.end()],
                );
                self.put(rows.buf, ro);
                self.put(dz.buf, dzb);
                self.put(dw.buf, dwb);
                self.put(scratch.buf, sc);
            }
            Op::SparseL1 {
                h,
                act,
                rows,
                dz,
                lambda,
            } => {
                let (mut ro, mut dzb) = (self.take(rows.buf), self.take(dz.buf));
                regularizers::sparse_l1(
                    act,
                    lambda,
                    self.floats(h),
                    &mut ro[rows.offset..rows.end()],
                    &mut dzb[dz.offset..dz.end()],
                );
                self.put(rows.buf, ro);
                self.put(dz.buf, dzb);
            }
            Op::SparseKl {
                h,
                sums,
                act,
                terms,
                dz,
                lambda,
                target,
            } => {
                let (mut te, mut dzb) = (self.take(terms.buf), self.take(dz.buf));
                regularizers::sparse_kl(
                    act,
                    lambda,
                    target,
                    self.floats(h),
                    self.floats(sums),
                    &mut te[terms.offset..terms.end()],
                    &mut dzb[dz.offset..dz.end()],
                );
                self.put(terms.buf, te);
                self.put(dz.buf, dzb);
            }
            Op::Sample {
                mu,
                logvar,
                eps,
                z,
                kl_rows,
                beta,
            } => {
                let (mut e, mut zb, mut kl) =
                    (self.take(eps.buf), self.take(z.buf), self.take(kl_rows.buf));
                regularizers::sample(
                    s,
                    beta,
                    self.floats(mu),
                    self.floats(logvar),
                    &mut e[eps.offset..eps.end()],
                    &mut zb[z.offset..z.end()],
                    &mut kl[kl_rows.offset..kl_rows.end()],
                );
                self.put(eps.buf, e);
                self.put(z.buf, zb);
                self.put(kl_rows.buf, kl);
            }
            Op::SampleGrad {
                dz,
                eps,
                mu,
                logvar,
                dmu,
                dlogvar,
                beta,
            } => {
                let (mut dm, mut dl) = (self.take(dmu.buf), self.take(dlogvar.buf));
                regularizers::sample_grad(
                    beta,
                    mu.rows,
                    self.floats(dz),
                    self.floats(eps),
                    self.floats(mu),
                    self.floats(logvar),
                    &mut dm[dmu.offset..dmu.end()],
                    &mut dl[dlogvar.offset..dlogvar.end()],
                );
                self.put(dmu.buf, dm);
                self.put(dlogvar.buf, dl);
            }
            Op::AddInto { x, out } => {
                let mut o = self.take(out.buf);
                for (a, &b) in o[out.offset..out.end()].iter_mut().zip(self.floats(x)) {
                    *a = *a + b;
                }
                self.put(out.buf, o);
            }
            Op::GradAccumulate { grads, acc } => {
                let (mut g, mut a) = (self.take(grads.buf), self.take(acc.buf));
                kernels::grad_accumulate(
                    s.accumulate_weight,
                    s.accumulate_flags,
                    &mut g[grads.offset..grads.end()],
                    &mut a[acc.offset..acc.end()],
                );
                self.put(grads.buf, g);
                self.put(acc.buf, a);
            }
            Op::GradNorm {
                grads,
                partials,
                norm_sq,
                health,
            } => {
                let mut p = self.take(partials.buf);
                let sum = kernels::grad_norm_sq(
                    self.floats(grads),
                    &mut p[partials.offset..partials.end()],
                );
                self.put(partials.buf, p);
                let mut n = self.take(norm_sq.buf);
                n[norm_sq.offset] = sum;
                self.put(norm_sq.buf, n);
                if !sum.is_finite() {
                    if let Storage::Index(h) = &mut self.bufs[health.buf] {
                        let at = health.offset;
                        if h[at] == 0 {
                            h[at + 1] = s.step;
                        }
                        h[at] += 1;
                    }
                }
            }
            Op::CheckFinite { x, flag } => {
                let finite = self.floats(x).iter().all(|v| v.is_finite());
                let mut f = self.take(flag.buf);
                f[flag.offset] = if finite { T::one() } else { T::zero() };
                self.put(flag.buf, f);
            }
            Op::LossScale {
                state,
                norm_sq,
                forward_finite,
                health,
            } => {
                let grads_finite = self.floats(norm_sq)[0].is_finite();
                let forward_finite = self.floats(forward_finite)[0] == T::one();
                let mut st = self.take(state.buf);
                if let Storage::Index(h) = &mut self.bufs[health.buf] {
                    kernels::loss_scale_update(
                        &mut st[state.offset..state.end()],
                        grads_finite,
                        forward_finite,
                        &mut h[health.offset..health.end()],
                    );
                }
                self.put(state.buf, st);
            }
            Op::Adam {
                params,
                grads,
                m,
                v,
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
                guard,
            } => {
                let Some(scale) = self.guard_scale(guard) else {
                    return;
                };
                let (mut p, mut mb, mut vb) =
                    (self.take(params.buf), self.take(m.buf), self.take(v.buf));
                kernels::adam(
                    AdamHyper {
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        decoupled,
                    },
                    scale,
                    s.lr,
                    s.bias_correction1,
                    s.bias_correction2,
                    &mut p[params.offset..params.end()],
                    self.floats(grads),
                    &mut mb[m.offset..m.end()],
                    &mut vb[v.offset..v.end()],
                );
                self.put(params.buf, p);
                self.put(m.buf, mb);
                self.put(v.buf, vb);
            }
            Op::Sgd {
                params,
                grads,
                velocity,
                momentum,
                weight_decay,
                guard,
            } => {
                let Some(scale) = self.guard_scale(guard) else {
                    return;
                };
                let (mut p, mut vel) = (self.take(params.buf), self.take(velocity.buf));
                kernels::sgd(
                    scale,
                    s.lr,
                    momentum,
                    weight_decay,
                    &mut p[params.offset..params.end()],
                    self.floats(grads),
                    &mut vel[velocity.offset..velocity.end()],
                );
                self.put(params.buf, p);
                self.put(velocity.buf, vel);
            }
            Op::Psd(ref p) => self.run_psd(p, s),
        }
    }
}
