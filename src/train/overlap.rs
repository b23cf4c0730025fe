//! Reducing the gradient in buckets while the backward pass goes on (PyTorch DDP's scheme):
//! the gradient arena is cut into buckets in the order the backward pass finishes them, and
//! each bucket is handed to a communication thread, which sums it over the ranks while the
//! main thread computes the next part of the backward pass.
//!
//! A bucket is a set of ranges of the arena whose last writer (the last op of the step that
//! writes any of its elements) comes before the next bucket's: [`BucketPlan::new`] finds each
//! element's last writer from the graph's ops (a weight written by the decoder's product and
//! accumulated into by the encoder's, as with tied weights, is final after the second) and cuts
//! buckets of at least the target size at op boundaries. [`reduce_overlapped`] runs the step's
//! ops in segments, one per bucket, and reads each bucket back as soon as its segment ran.
//!
//! The result is the unbucketed reduction's bits: a segmented run executes the same ops in the
//! same order as one run (the CPU executor runs op after op; nothing carries over between runs
//! but the buffers), the weighting and accumulation are the same element-wise f32 operations,
//! and every [`crate::distributed::Communicator`] sum is element-wise in rank order (the f16
//! one rounds element by element), so summing a bucket alone gives its elements the bits
//! summing the whole arena gives them. Every rank reduces the same buckets in the same order:
//! the buckets come from the main step's graph, the same program on every rank (the ranks'
//! batch sizes differ by at most a row, which changes no op's gradient view); a rank whose
//! last micro-batch has no rows, or that runs the partial batch's program, reduces the same
//! buckets at its own ready points ([`BucketPlan::ready`]).
//!
//! On a GPU, each segment and the copy of its bucket's ranges into a staging buffer are one
//! submission ([`crate::gpu::GpuExecutor::submit_and_copy`]), and the host maps bucket `k`
//! only once segment `k + 1` is submitted, so the device computes while the host waits for,
//! maps and hands over a bucket. The segments are the one run's dispatches in the same order,
//! each submission's writes seen by the next, so the bits are those of one submission.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc;
use std::time::Instant;

use crate::distributed::{Communicator, ReducePrecision};
use crate::error::{Error, Result};
use crate::graph::{Graph, StepParams, Tensor, TrainingGraph};
use crate::train::backend::Pending;
use crate::train::micro::MicroStep;
use crate::train::{Backend, Trainer};

/// The default bucket size of [`crate::TrainConfig::bucket_bytes`]: 1 MiB of f32 gradient.
/// PyTorch DDP's default is 25 MB, for models of 10⁸ parameters and more; our workloads'
/// gradients are 4.3 MB (mnist_ae), 36 MB (large_ae/4) and 570 MB (large_ae), so 1 MiB gives
/// mnist_ae a few buckets, and the larger models a bucket per weight (one op's gradient is
/// never split).
pub const DEFAULT_BUCKET_BYTES: usize = 1 << 20;

/// A bucket size as the CLI and the Python keyword write it: a number of KiB, or `off` (one sum
/// after the backward pass: `None`), as [`crate::TrainConfig::bucket_bytes`] takes it. The error
/// says what is wrong with `s`; the caller adds the name it came under.
pub fn parse_bucket_kib(s: &str) -> std::result::Result<Option<usize>, String> {
    if s.trim() == "off" {
        return Ok(None);
    }
    s.trim()
        .parse::<usize>()
        .ok()
        .and_then(|kib| kib.checked_mul(1024))
        .map(Some)
        .ok_or_else(|| format!("'{s}' is neither a bucket size in KiB nor off"))
}

/// The buckets of a gradient arena, and when each is final in the op ranges planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketPlan {
    /// Element ranges of the arena (relative to its view's start), sorted and disjoint, one
    /// list a bucket, in the order they are reduced.
    buckets: Vec<Vec<Range<usize>>>,
    /// For each op range planned, each bucket's ready point: the end of the ops that must have
    /// run (`ops.start..ready`) before none of its elements is written again, non-decreasing.
    schedules: Vec<(Range<usize>, Vec<usize>)>,
    /// Elements of the arena.
    len: usize,
}

/// The `(op, range)` writes of `ops` into the arena `grads`, ranges relative to its start.
fn writes(graph: &Graph, ops: Range<usize>, grads: Tensor) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    for i in ops {
        for t in graph.ops[i].outputs() {
            let (start, end) = (t.offset.max(grads.offset), t.end().min(grads.end()));
            if t.buf == grads.buf && start < end {
                out.push((i, start - grads.offset..end - grads.offset));
            }
        }
    }
    out
}

/// The arena `0..len` as consecutive pieces, each with its last writer among `writes` (`None`:
/// not written), neighbours with the same writer merged.
fn last_writers(
    writes: &[(usize, Range<usize>)],
    len: usize,
) -> Vec<(Range<usize>, Option<usize>)> {
    let mut cuts: Vec<usize> = [0, len]
        .into_iter()
        .chain(writes.iter().flat_map(|(_, r)| [r.start, r.end]))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut last = vec![None; cuts.len() - 1];
    for (op, r) in writes {
        let (a, b) = (
            cuts.binary_search(&r.start).expect("a cut"),
            cuts.binary_search(&r.end).expect("a cut"),
        );
        for l in &mut last[a..b] {
            *l = (*l).max(Some(*op));
        }
    }
    let mut pieces: Vec<(Range<usize>, Option<usize>)> = Vec::new();
    for (k, l) in last.into_iter().enumerate() {
        match pieces.last_mut() {
            Some((r, w)) if *w == l => r.end = cuts[k + 1],
            _ => pieces.push((cuts[k]..cuts[k + 1], l)),
        }
    }
    pieces
}

/// The op range's end after which a piece last written by `writer` is final.
fn done(ops: &Range<usize>, writer: Option<usize>) -> usize {
    writer.map_or(ops.start, |i| i + 1)
}

impl BucketPlan {
    /// The buckets of the arena `grads` of `graph` for the step program `ops[0]` (its forward
    /// and backward pass), of at least `target_bytes` of f32 each where the ops allow (the
    /// last may be smaller; an op's writes are never split), with each bucket's ready points
    /// in every range of `ops` (the main step's program first, then e.g. the partial batch's).
    /// Elements no op of a range writes are ready at its start.
    ///
    /// # Panics
    /// If `ops` is empty or a range is not one of `graph`'s ops (a bug of the caller's).
    pub fn new(graph: &Graph, grads: Tensor, target_bytes: usize, ops: &[Range<usize>]) -> Self {
        let len = grads.len();
        let main = &ops[0];
        let mut pieces = last_writers(&writes(graph, main.clone(), grads), len);
        // In the order they become final; at the same op, in address order.
        pieces.sort_by_key(|(r, w)| (done(main, *w), r.start));
        let mut buckets = Vec::new();
        let (mut current, mut bytes) = (Vec::new(), 0usize);
        for (k, (r, w)) in pieces.iter().enumerate() {
            bytes += r.len() * 4;
            current.push(r.clone());
            let next = pieces.get(k + 1).map(|(_, w)| done(main, *w));
            // Elements no op writes (alignment padding) go with the first bucket that waits.
            let (d, waits) = (done(main, *w), done(main, *w) > main.start);
            if next.is_none() || (bytes >= target_bytes && next != Some(d) && waits) {
                buckets.push(merged(std::mem::take(&mut current)));
                bytes = 0;
            }
        }
        let mut plan = BucketPlan {
            buckets,
            schedules: Vec::new(),
            len,
        };
        plan.schedules = ops
            .iter()
            .map(|r| (r.clone(), plan.ready_points(graph, r.clone(), grads)))
            .collect();
        plan
    }

    /// Each bucket's ready point in `ops`, made non-decreasing (buckets are reduced in order).
    fn ready_points(&self, graph: &Graph, ops: Range<usize>, grads: Tensor) -> Vec<usize> {
        let pieces = last_writers(&writes(graph, ops.clone(), grads), self.len);
        let mut at = ops.start;
        self.buckets
            .iter()
            .map(|ranges| {
                for r in ranges {
                    // The pieces overlapping r (pieces tile 0..len in address order).
                    let first = pieces.partition_point(|(p, _)| p.end <= r.start);
                    for (p, w) in &pieces[first..] {
                        if p.start >= r.end {
                            break;
                        }
                        at = at.max(done(&ops, *w));
                    }
                }
                at
            })
            .collect()
    }

    /// The buckets, in the order they are reduced: each a sorted list of disjoint element
    /// ranges of the arena; together they tile it.
    pub fn buckets(&self) -> &[Vec<Range<usize>>] {
        &self.buckets
    }

    /// Each bucket's ready point in `ops` (one of the ranges planned): the end of the ops
    /// that must have run (`ops.start..ready`) before none of its elements is written again.
    pub fn ready(&self, ops: &Range<usize>) -> Option<&[usize]> {
        self.schedules
            .iter()
            .find(|(r, _)| r == ops)
            .map(|(_, s)| &s[..])
    }
}

/// `ranges` sorted, neighbours merged.
fn merged(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// The reduced gradient of [`reduce_overlapped`], and when its backward pass ended.
pub(super) struct Reduced {
    /// The whole arena, summed over the ranks.
    pub grads: Vec<f32>,
    /// When the last op of the step had run (before the wait for the last reductions).
    pub computed: Instant,
    /// Seconds the communication thread spent reducing (hidden behind the backward pass or
    /// not).
    pub busy_s: f64,
    /// Runs of the backend (submissions on a device).
    pub submissions: u64,
    /// Read-backs of gradient (a bucket's counts one, the earlier micro-steps' sum one).
    pub reads: u64,
}

/// `ops`, a step program of `tg` (the main step's `0..update_start` or the partial batch's),
/// without the [`crate::graph::Op::GradAccumulate`] an accumulating graph ends it with: the
/// backward pass whose writes the buckets follow. Overlapped, that op's `acc + w·g` is done
/// bucket by bucket on the host, with the same f32 operations.
pub(super) fn backward_ops(tg: &TrainingGraph, ops: Range<usize>) -> Range<usize> {
    let trim = usize::from(tg.accumulator.is_some());
    ops.start..ops.end - trim
}

impl Trainer {
    /// The micro-steps of one optimizer step of a trainer whose gradient is reduced in
    /// buckets (more than one rank): all but this rank's last run as
    /// [`Trainer::run_micro_steps`] runs them, their sum left in the accumulator and read back
    /// once; the last runs its backward pass ([`backward_ops`]) in segments, and each bucket
    /// of its gradient, weighted by its rows' share and added to that sum, is reduced over the
    /// ranks on the communication thread while the next segment computes
    /// ([`reduce_overlapped`]). A rank with no rows in the step reduces zeros in the same
    /// buckets. The bits are those of the on-device sum and one reduction of the arena where
    /// the device computes `acc + w·g` unfused, as the CPU executor, lavapipe and GL do.
    pub(super) fn overlapped_micro_steps(
        &mut self,
        micros: &[MicroStep],
        global: usize,
        plan: &BucketPlan,
        mut values: Option<&mut Vec<f64>>,
    ) -> Result<Reduced> {
        let comm = self
            .parallel
            .as_ref()
            .expect("a parallel trainer")
            .comm
            .clone();
        let precision = self.config.reduce_precision;
        let grads = self.tg.grads;
        let Some((last, earlier)) = micros.split_last() else {
            return reduce_overlapped(
                &mut self.backend,
                None,
                plan,
                grads,
                None,
                None,
                &*comm,
                precision,
            );
        };
        let (mut submissions, mut reads, mut acc) = (0, 0, None);
        if !earlier.is_empty() {
            let accumulator = self.tg.accumulator.ok_or_else(|| {
                Error::Config("an accumulating step without an accumulator (a bug)".into())
            })?;
            let run =
                self.run_micro_steps(earlier, global, None, accumulator, values.as_deref_mut())?;
            submissions += run.submissions;
            reads += 1;
            acc = run.grads;
        }
        let one = std::slice::from_ref(last);
        self.load_micro_rows(one);
        let sp = self.micro_params(one)[0];
        let ops = match (&self.tg.tail, last.partial) {
            (Some(t), true) => t.ops.clone(),
            _ => 0..self.tg.graph.update_start,
        };
        let ops = backward_ops(&self.tg, ops);
        let mut r = reduce_overlapped(
            &mut self.backend,
            Some((ops, sp)),
            plan,
            grads,
            Some(sp.accumulate_weight),
            acc,
            &*comm,
            precision,
        )?;
        if let Some(values) = values {
            self.add_terms(last.partial, last.rows as f64 / global as f64, values)?;
        }
        r.submissions += submissions;
        r.reads += reads;
        Ok(r)
    }
}

/// What the communication thread does with one bucket of this micro-batch's gradient, `g`
/// (read back, in the order of the bucket's ranges): `w · g`, plus the earlier micro-batches'
/// sum `acc` when there is one, summed over the ranks, into `out`.
struct Reduction<'a> {
    comm: &'a dyn Communicator,
    precision: ReducePrecision,
    weight: Option<f32>,
    acc: Option<Vec<f32>>,
    out: Vec<f32>,
}

impl Reduction<'_> {
    fn bucket(&mut self, ranges: &[Range<usize>], mut g: Vec<f32>) -> Result<()> {
        if let Some(w) = self.weight {
            g.iter_mut().for_each(|x| *x *= w);
        }
        if let Some(acc) = &self.acc {
            let mut at = 0;
            for r in ranges {
                // The order of the unbucketed `acc += g`, acc's element first (which operand's
                // NaN payload survives depends on it).
                for (x, &a) in g[at..at + r.len()].iter_mut().zip(&acc[r.clone()]) {
                    #[allow(clippy::assign_op_pattern)]
                    {
                        *x = a + *x;
                    }
                }
                at += r.len();
            }
        }
        self.precision.all_reduce_sum(self.comm, &mut g)?;
        let mut at = 0;
        for r in ranges {
            self.out[r.clone()].copy_from_slice(&g[at..at + r.len()]);
            at += r.len();
        }
        Ok(())
    }
}

/// Runs the last micro-batch of an optimizer step — `run`: its ops and step parameters, `None`
/// for a rank without rows in it — and sums its gradient over `comm`'s ranks bucket by bucket
/// (`plan`), each bucket on a communication thread as soon as the ops that finish it ran,
/// while the main thread runs the rest. Each bucket is weighted by `weight` (this rank's share
/// of the step's rows) and added to the earlier micro-batches' sum `acc` before the sum over
/// the ranks, in `precision`. The arena `grads` itself is left as the backward pass wrote it.
///
/// The bits are those of one run of the ops, one read-back of the arena, the same weighting
/// and accumulation, and one [`ReducePrecision::all_reduce_sum`] of the whole arena. No other
/// collective may run on `comm` meanwhile: the thread is joined before this returns.
#[allow(clippy::too_many_arguments)]
pub(super) fn reduce_overlapped(
    backend: &mut Backend,
    run: Option<(Range<usize>, StepParams)>,
    plan: &BucketPlan,
    grads: Tensor,
    weight: Option<f32>,
    acc: Option<Vec<f32>>,
    comm: &dyn Communicator,
    precision: ReducePrecision,
) -> Result<Reduced> {
    if acc.as_ref().is_some_and(|a| a.len() != plan.len) || grads.len() != plan.len {
        return Err(Error::Config(format!(
            "a bucket plan of {} elements for a gradient of {} (accumulated: {:?})",
            plan.len,
            grads.len(),
            acc.as_ref().map(Vec::len)
        )));
    }
    let Some((ops, sp)) = run else {
        // Nothing to compute: the earlier micro-batches' sum as it is (or zeros), in the same
        // buckets as the ranks that compute.
        let started = Instant::now();
        let acc = acc.unwrap_or_else(|| vec![0.0; plan.len]);
        let mut reduction = Reduction {
            comm,
            precision,
            weight: None,
            acc: None,
            out: vec![0.0; plan.len],
        };
        for ranges in &plan.buckets {
            let g = ranges
                .iter()
                .flat_map(|r| &acc[r.clone()])
                .copied()
                .collect();
            reduction.bucket(ranges, g)?;
        }
        return Ok(Reduced {
            grads: reduction.out,
            computed: started,
            busy_s: started.elapsed().as_secs_f64(),
            submissions: 0,
            reads: 0,
        });
    };
    let mut reduction = Reduction {
        comm,
        precision,
        weight,
        out: vec![0.0; plan.len],
        acc,
    };
    let ready = plan.ready(&ops).ok_or_else(|| {
        Error::Config(format!(
            "no bucket plan for ops {}..{} (a bug of the trainer's)",
            ops.start, ops.end
        ))
    })?;
    let (tx, rx) = mpsc::channel::<(usize, Vec<f32>)>();
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || -> Result<(Vec<f32>, f64)> {
            let mut busy = 0.0;
            for (k, g) in rx {
                let started = Instant::now();
                reduction.bucket(&plan.buckets[k], g)?;
                busy += started.elapsed().as_secs_f64();
            }
            Ok((reduction.out, busy))
        });
        let (mut submissions, mut reads) = (0, 0);
        let computed = (|| -> Result<Instant> {
            // Reads submitted and not yet sent: on a GPU the one of the segment before the
            // last, mapped once the next segment is submitted; on the CPU none (sent at once).
            let mut inflight: VecDeque<(usize, Pending)> = VecDeque::new();
            let mut at = ops.start;
            let mut stopped = false;
            for (k, ranges) in plan.buckets.iter().enumerate() {
                let end = ready[k].max(at);
                let pending = backend.run_and_copy(at..end, &[sp], grads, ranges)?;
                // A GPU submits the copy even without ops; the CPU counts its runs.
                if end > at || !pending.is_ready() {
                    submissions += 1;
                }
                inflight.push_back((k, pending));
                at = end;
                reads += 1;
                while inflight
                    .front()
                    .is_some_and(|(_, p)| p.is_ready() || inflight.len() > 1)
                {
                    let (k, p) = inflight.pop_front().expect("a read in flight");
                    if tx.send((k, p.wait()?)).is_err() {
                        stopped = true; // The thread stopped at an error, which its join returns.
                        break;
                    }
                }
                if stopped {
                    break;
                }
            }
            if !stopped && at < ops.end {
                backend.run(at..ops.end, &[sp])?;
                submissions += 1;
            }
            for (k, p) in inflight {
                if stopped || tx.send((k, p.wait()?)).is_err() {
                    stopped = true;
                }
            }
            // On a GPU, the backward pass has ended when the device has run its last op.
            backend.finish()?;
            Ok(Instant::now())
        })();
        drop(tx);
        let joined = thread
            .join()
            .map_err(|_| Error::Distributed("the gradient's reduction thread panicked".into()))?;
        let (grads, busy_s) = joined?;
        Ok(Reduced {
            grads,
            computed: computed?,
            busy_s,
            submissions,
            reads,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::build::build_training_graph_with_tail;
    use crate::model::{ModelSpec, Variant};
    use crate::optim::OptimizerConfig;

    /// Checks `plan` against the graph: the buckets tile the arena, and each is ready exactly
    /// after its last writer in every range planned.
    fn check(plan: &BucketPlan, tg: &crate::graph::TrainingGraph, ranges: &[Range<usize>]) {
        let (graph, grads) = (&tg.graph, tg.grads);
        let layout = &tg.layout;
        let params: Vec<Range<usize>> = layout
            .layers
            .iter()
            .flat_map(|l| [&l.weight, &l.bias])
            .chain(&layout.extra)
            .map(|t| t.offset..t.offset + t.len())
            .collect();
        assert!(params.iter().all(|r| !r.is_empty()));
        let mut owner = vec![usize::MAX; grads.len()];
        for (k, b) in plan.buckets().iter().enumerate() {
            for r in b {
                for e in r.clone() {
                    assert_eq!(owner[e], usize::MAX, "element {e} in two buckets");
                    owner[e] = k;
                }
            }
        }
        assert!(
            owner.iter().all(|&k| k != usize::MAX),
            "every element in a bucket"
        );
        for ops in ranges {
            let ready = plan.ready(ops).expect("a planned range");
            assert!(ready.windows(2).all(|w| w[0] <= w[1]), "{ready:?}");
            let mut last = vec![None; grads.len()];
            for (op, r) in writes(graph, ops.clone(), grads) {
                for e in r {
                    last[e] = Some(op);
                }
            }
            // Only the alignment padding between parameters is never written.
            let unwritten = (0..last.len()).filter(|&e| last[e].is_none());
            for e in unwritten {
                assert!(
                    !params.iter().any(|r| r.contains(&e)),
                    "parameter element {e} never written in {ops:?}"
                );
            }
            let mut before = ops.start;
            for (k, b) in plan.buckets().iter().enumerate() {
                let writer = b.iter().flat_map(Clone::clone).map(|e| last[e]).max();
                let tight = writer.flatten().map_or(ops.start, |i| i + 1).max(before);
                assert_eq!(ready[k], tight, "bucket {k} of {ops:?}");
                before = ready[k];
            }
        }
    }

    /// The buckets of `spec`'s step at `batch` (and `tail`), checked.
    fn plan_of(
        spec: &ModelSpec,
        batch: usize,
        tail: Option<usize>,
        bytes: usize,
    ) -> Vec<Vec<Range<usize>>> {
        let tg = build_training_graph_with_tail(
            spec,
            batch,
            tail,
            64,
            &OptimizerConfig::adam(1e-3),
            None,
            crate::graph::Precision::F32,
        );
        let ranges: Vec<Range<usize>> = std::iter::once(0..tg.graph.update_start)
            .chain(tg.tail.as_ref().map(|t| t.ops.clone()))
            .collect();
        let plan = BucketPlan::new(&tg.graph, tg.grads, bytes, &ranges);
        check(&plan, &tg, &ranges);
        let main = plan.ready(&ranges[0]).unwrap();
        assert!(
            main.windows(2).all(|w| w[0] < w[1]),
            "a bucket a segment of the main step: {main:?}"
        );
        plan.buckets().to_vec()
    }

    #[test]
    fn buckets_tile_the_arena_and_follow_their_last_writers() {
        // mnist_ae's shape: 1 MiB buckets make several of its 4.3 MB, one bucket every size.
        let mnist = ModelSpec::mirrored(&[784, 512, 256, 32]);
        let n = plan_of(&mnist, 4, None, DEFAULT_BUCKET_BYTES).len();
        assert!((3..=8).contains(&n), "{n} buckets for mnist_ae");
        assert_eq!(plan_of(&mnist, 4, None, usize::MAX).len(), 1);
        assert!(plan_of(&mnist, 4, Some(3), 0).len() > n);
        // Tied weights (written by the decoder, accumulated into by the encoder), a VAE's two
        // heads, the contractive penalty's extra weight-gradient writer, the partial batch.
        let tied = ModelSpec::builder()
            .encoder([9, 7, 3])
            .tied(true)
            .build()
            .unwrap();
        let vae = ModelSpec::builder()
            .encoder([9, 7, 3])
            .variant(Variant::Vae {
                beta: 1.0,
                samples: 2,
            })
            .build()
            .unwrap();
        let contractive = ModelSpec::builder()
            .encoder([9, 3])
            .variant(Variant::Contractive {
                lambda: 0.1,
                projections: None,
            })
            .build()
            .unwrap();
        for spec in [tied, vae, contractive] {
            for bytes in [0, 40, DEFAULT_BUCKET_BYTES] {
                // Ranks whose shares differ by a row reduce the same buckets.
                let plan = plan_of(&spec, 5, Some(2), bytes);
                assert_eq!(plan_of(&spec, 4, None, bytes), plan);
                assert_eq!(plan_of(&spec, 1, None, bytes), plan);
                if bytes == 0 {
                    assert!(plan.len() > 2, "{plan:?}");
                }
            }
        }
    }

    #[test]
    fn a_step_run_in_its_buckets_segments_is_one_run_bit_for_bit() {
        use crate::cpu::CpuExecutor;
        use crate::model::Parameters;
        let spec = ModelSpec::builder()
            .encoder([33, 7, 3])
            .variant(Variant::Vae {
                beta: 1.0,
                samples: 2,
            })
            .build()
            .unwrap();
        let tg = build_training_graph_with_tail(
            &spec,
            7,
            None,
            16,
            &OptimizerConfig::adam(1e-3),
            None,
            crate::graph::Precision::F32,
        );
        let ops = 0..tg.graph.update_start;
        let plan = BucketPlan::new(&tg.graph, tg.grads, 0, std::slice::from_ref(&ops));
        assert!(plan.buckets().len() > 2, "{:?}", plan.buckets());
        let sp = StepParams {
            step: 3,
            batch_start: 5,
            seed_lo: 11,
            row_base: 2,
            rows_global: 20,
            ..StepParams::default()
        };
        let data: Vec<f32> = (0..16 * 33)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        let order: Vec<u32> = (0..16).rev().collect();
        let params = Parameters::init(&spec, 9).arena;
        let start = || {
            let mut e = CpuExecutor::<f32>::new(tg.graph.clone()).unwrap();
            e.write(tg.data.buf, &data).unwrap();
            e.write_u32(tg.order.buf, &order).unwrap();
            e.write(tg.params.buf, &params).unwrap();
            e
        };
        let mut whole = start();
        whole.run(ops.clone(), &[sp]).unwrap();
        let mut parts = start();
        let mut at = ops.start;
        for &ready in plan.ready(&ops).unwrap() {
            parts.run(at..ready, &[sp]).unwrap();
            at = ready;
        }
        parts.run(at..ops.end, &[sp]).unwrap();
        let bits = |e: &CpuExecutor<f32>| -> Vec<u32> {
            e.view(tg.grads)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(bits(&parts), bits(&whole));
        assert!(
            bits(&whole).iter().any(|&b| b != 0),
            "a gradient was computed"
        );
    }
}
