//! The micro-steps of one optimizer step of an accumulating or data-parallel trainer
//! ([`Trainer::train_steps_parallel`]): which of the step's micro-batches this rank has rows
//! of, their step values (rows, weight, accumulation flags), how they are grouped into
//! submissions, and, when streaming, the window that holds a group's rows.
//!
//! Every micro-step ends with [`Op::GradAccumulate`]: the first starts the sum, the last
//! leaves it in the gradient arena, each weighted by its rows' share of the step's global
//! batch. A group is one submission: up to the ring's [`MAX_STEPS_PER_SUBMIT`] micro-steps,
//! up to the streamed window's micro-batches (the window holds `window` shares of a
//! micro-batch, so a group's rows are uploaded at once before it), and one micro-step when the
//! step's loss is reported (each micro-batch's loss terms are read after it).
//!
//! [`Op::GradAccumulate`]: crate::graph::Op::GradAccumulate

use std::ops::Range;

use crate::error::Result;
use crate::gpu::executor::MAX_STEPS_PER_SUBMIT;
use crate::graph::{
    ACCUMULATE_FIRST, ACCUMULATE_LAST, ACCUMULATE_STEP, Segment, StepParams, Tensor,
};
use crate::train::Trainer;

/// What [`Trainer::run_micro_steps`] did.
pub(super) struct MicroRun {
    /// The sum of the micro-steps' weighted gradients, read back (ranks to reduce over only;
    /// `None` with one rank, and for a rank with no rows of the step).
    pub grads: Option<Vec<f32>>,
    /// Submissions made, the update's included when it was given.
    pub submissions: u64,
}

/// One micro-batch of an optimizer step, as this rank computes it.
pub(super) struct MicroStep {
    /// The epoch's partial micro-batch (the tail graph's ops).
    pub partial: bool,
    /// This rank's first row of it, as a position in the epoch's order.
    pub start: usize,
    /// This rank's rows of it (never 0: a rank without rows of a micro-batch skips it).
    pub rows: usize,
    /// The step's values, `batch_start` set for a resident data set.
    pub params: StepParams,
}

impl Trainer {
    /// This rank's micro-steps of 0-based optimizer step `s`, whose `global` rows start at
    /// `position` in the epoch's order: one a micro-batch this rank has rows of, with its
    /// weight (rows over `global`) and flags.
    pub(super) fn micro_steps(&self, s: u64, global: usize, position: usize) -> Vec<MicroStep> {
        let p = self.parallel.as_ref().expect("a parallel trainer");
        let streaming = self.streaming.is_some();
        let mut micros: Vec<MicroStep> = (0..global.div_ceil(p.micro))
            .filter_map(|k| {
                let offset = k * p.micro;
                let partial = global - offset < p.micro;
                let (first, rows) = if partial { p.tail } else { p.main };
                // This rank has no rows of a partial micro-batch.
                (rows > 0).then(|| {
                    let start = position + offset + first;
                    let mut params = self.step_params(s, if streaming { 0 } else { start });
                    params.row_base = (offset + first) as u32;
                    params.rows_global = global as u32;
                    // Exactly 1 when this rank's rows are the whole step's.
                    params.accumulate_weight = rows as f32 / global as f32;
                    params.accumulate_flags = ACCUMULATE_STEP;
                    MicroStep {
                        partial,
                        start,
                        rows,
                        params,
                    }
                })
            })
            .collect();
        if let Some(m) = micros.first_mut() {
            m.params.accumulate_flags |= ACCUMULATE_FIRST;
        }
        if let Some(m) = micros.last_mut() {
            m.params.accumulate_flags |= ACCUMULATE_LAST;
        }
        micros
    }

    /// Runs an optimizer step's micro-steps in [`Trainer::micro_groups`]' submissions, the
    /// sum of their weighted gradients left in the gradient arena (in the accumulator when
    /// the last of `micros` is not the step's last). With `update` (one rank) the optimizer
    /// ops follow in the last submission (in one more when the ring is full) and nothing is
    /// read back; without, `sum` (where the sum is) is read back at the end of the last. With
    /// `values` (a reported step), each micro-batch's loss terms, weighted by its rows' share
    /// of the step's `global` rows, are added to them after its submission.
    pub(super) fn run_micro_steps(
        &mut self,
        micros: &[MicroStep],
        global: usize,
        update: Option<StepParams>,
        sum: Tensor,
        mut values: Option<&mut Vec<f64>>,
    ) -> Result<MicroRun> {
        let mut run = MicroRun {
            grads: None,
            submissions: 0,
        };
        let groups = self.micro_groups(micros.len(), values.is_some());
        for (g, group) in groups.iter().enumerate() {
            let last = g + 1 == groups.len();
            let group = &micros[group.clone()];
            self.load_micro_rows(group);
            let steps = self.micro_params(group);
            let mut segments = self.segments(group, &steps);
            let update_here = update
                .as_ref()
                .filter(|_| last && steps.len() < MAX_STEPS_PER_SUBMIT);
            if let Some(u) = update_here {
                segments.push(Segment {
                    ops: self.tg.update.clone(),
                    steps: std::slice::from_ref(u),
                });
            }
            if last && update.is_none() {
                run.grads = Some(self.backend.run_segments_and_read(&segments, sum)?);
            } else {
                self.backend.run_segments(&segments)?;
            }
            run.submissions += 1;
            if let Some(values) = values.as_deref_mut() {
                // A reported step's groups are of one micro-step each.
                for m in group {
                    self.add_terms(m.partial, m.rows as f64 / global as f64, values)?;
                }
            }
            if let (true, None, Some(u)) = (last, update_here, update) {
                self.backend.run(self.tg.update.clone(), &[u])?;
                run.submissions += 1;
            }
        }
        Ok(run)
    }

    /// The submissions `count` micro-steps go in, as ranges of them: one each when
    /// `reporting`, else as many as the streamed window (or the step ring) holds.
    pub(super) fn micro_groups(&self, count: usize, reporting: bool) -> Vec<Range<usize>> {
        let per = if reporting {
            1
        } else {
            self.streaming
                .as_ref()
                .map_or(MAX_STEPS_PER_SUBMIT, |s| s.window)
        };
        (0..count)
            .step_by(per)
            .map(|a| a..(a + per).min(count))
            .collect()
    }

    /// The step values of a group's micro-steps; streamed, each reads its rows at its place
    /// in the window ([`Trainer::load_micro_rows`]).
    pub(super) fn micro_params(&self, group: &[MicroStep]) -> Vec<StepParams> {
        let main_rows = self.parallel.as_ref().expect("a parallel trainer").main.1;
        group
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let mut sp = m.params;
                if self.streaming.is_some() {
                    sp.batch_start = (j * main_rows) as u32;
                }
                sp
            })
            .collect()
    }

    /// A group's submission: the full micro-batches' steps on the main step's ops, then the
    /// partial one's (always the step's last) on the tail graph's.
    pub(super) fn segments<'a>(
        &self,
        group: &[MicroStep],
        steps: &'a [StepParams],
    ) -> Vec<Segment<'a>> {
        let full = group.iter().take_while(|m| !m.partial).count();
        let mut segments = Vec::with_capacity(3);
        if full > 0 {
            segments.push(Segment {
                ops: 0..self.tg.graph.update_start,
                steps: &steps[..full],
            });
        }
        if full < group.len() {
            let tail = self
                .tg
                .tail
                .as_ref()
                .expect("a graph for this rank's partial micro-batch");
            segments.push(Segment {
                ops: tail.ops.clone(),
                steps: &steps[full..],
            });
        }
        segments
    }

    /// Streaming: uploads the rows of a group's micro-steps as the window, each at its place
    /// (a full micro-batch's share apart; the partial one, with fewer rows, comes last).
    pub(super) fn load_micro_rows(&mut self, group: &[MicroStep]) {
        let Some(s) = &self.streaming else { return };
        let rows: usize = group.iter().map(|m| m.rows).sum();
        let mut window = Vec::with_capacity(rows * s.data.cols);
        for m in group {
            for &r in &s.order[m.start..m.start + m.rows] {
                window.extend_from_slice(s.data.row(r as usize));
            }
        }
        self.backend.write(self.tg.data.buf, &window);
    }
}
