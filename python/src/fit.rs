//! `hourglass.train`'s loop: [`Trainer::fit_with`] with the GIL released, as `hourglass train`
//! drives it (the same `FitOptions`, the same early stopping), the epoch reports handed to the
//! Python callback as the dicts `metrics.jsonl` holds, and Ctrl-C honoured at every loss read.

use std::ops::ControlFlow;
use std::time::Instant;

use hourglass::train::{EarlyStop, FitEvent, FitOptions, LossReport, Trainer};
use hourglass::{Dataset, Result};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Value, json};

/// One `metrics.jsonl` line: its keys in the CLI's order.
pub type Record = Vec<(String, Value)>;

fn record(e: &hourglass::train::EpochReport, elapsed_s: f64) -> Record {
    let mut f: Record = vec![
        ("epoch".into(), json!(e.epoch)),
        ("step".into(), json!(e.step)),
    ];
    let mut put = |prefix: &str, report: &LossReport| {
        f.push((format!("{prefix}_loss"), json!(report.total())));
        for (name, value) in &report.terms {
            f.push((format!("{prefix}_{name}"), json!(value)));
        }
    };
    put("train", &e.train);
    if let Some(val) = &e.val {
        put("val", val);
    }
    f.push(("skipped_steps".into(), json!(e.train.skipped_steps)));
    if let Some((scale, overflows)) = e.train.loss_scale {
        f.push(("loss_scale".into(), json!(scale)));
        f.push(("overflow_steps".into(), json!(overflows)));
    }
    f.push(("samples_per_sec".into(), json!(e.samples_per_sec)));
    let lr = e.lr.to_string().parse::<f64>().unwrap_or(f64::from(e.lr));
    f.push(("lr".into(), json!(lr)));
    f.push(("elapsed_s".into(), json!(elapsed_s)));
    f
}

/// A record as a Python dict.
pub fn record_dict<'py>(py: Python<'py>, r: &Record) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in r {
        match v {
            Value::Number(n) if n.is_u64() => d.set_item(k, n.as_u64())?,
            Value::Number(n) => d.set_item(k, n.as_f64())?,
            other => d.set_item(k, other.to_string())?,
        }
    }
    Ok(d)
}

/// How a run ended.
pub struct Outcome {
    pub history: Vec<Record>,
    /// An exception of the callback, or KeyboardInterrupt.
    pub raised: Option<PyErr>,
}

/// Runs the fit loop with the GIL released; `callback(report) -> False` stops it and
/// `progress(step, total, epoch, loss)` hears every loss read.
pub fn run(
    py: Python<'_>,
    trainer: &mut Trainer,
    total: u64,
    validation: Option<&Dataset>,
    early_stop: Option<u64>,
    log_every: Option<u64>,
    callback: Option<&Py<PyAny>>,
    progress: Option<&Py<PyAny>>,
) -> Result<Outcome> {
    let mut options = FitOptions::steps(total);
    options.report_every = log_every;
    options.validation = validation;
    let mut stop = early_stop.map(EarlyStop::new);
    let mut history = Vec::new();
    let mut raised: Option<PyErr> = None;
    let started = Instant::now();
    py.detach(|| {
        trainer.fit_with(&options, |_, event| {
            let flow: PyResult<ControlFlow<()>> = Python::attach(|py| {
                py.check_signals()?;
                match event {
                    FitEvent::Report { step, epoch, loss } => {
                        if let Some(p) = progress {
                            p.call1(py, (*step, total, *epoch, loss.total()))?;
                        }
                        Ok(ControlFlow::Continue(()))
                    }
                    FitEvent::Checkpoint { .. } => Ok(ControlFlow::Continue(())),
                    FitEvent::Epoch(e) => {
                        let r = record(e, started.elapsed().as_secs_f64());
                        let mut flow = ControlFlow::Continue(());
                        let report = record_dict(py, &r)?;
                        history.push(r);
                        if let Some(cb) = callback {
                            let answer = cb.call1(py, (report,))?;
                            // Only an explicit False stops (None, the usual return, goes on).
                            if answer.bind(py).is_instance_of::<pyo3::types::PyBool>()
                                && !answer.extract::<bool>(py)?
                            {
                                flow = ControlFlow::Break(());
                            }
                        }
                        if let Some(s) = &mut stop
                            && s.update(e.monitored()).is_break()
                        {
                            flow = ControlFlow::Break(());
                        }
                        Ok(flow)
                    }
                }
            });
            flow.unwrap_or_else(|e| {
                raised = Some(e);
                ControlFlow::Break(())
            })
        })
    })?;
    Ok(Outcome { history, raised })
}
