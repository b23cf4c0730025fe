//! GPU failures are errors that say what happened and what to do, never panics.

mod common;

use hourglass::gpu::GpuExecutor;
use hourglass::graph::{Graph, Op, StepParams};
use hourglass::model::Activation;

#[test]
fn a_buffer_beyond_the_adapter_limit_is_a_clear_error() {
    let Some(ctx) = common::gpu() else { return };
    let too_big = ctx.limits.max_storage_buffer_binding_size as usize / 4 + 1;
    let mut g = Graph::default();
    let x = g.matrix("activations", 1, too_big);
    let y = g.matrix("y", 1, 4);
    g.push(Op::Activation {
        x,
        y,
        act: Activation::Relu,
    });
    let err = GpuExecutor::new(ctx, g).err().expect("refused").to_string();
    assert!(
        err.contains("activations") && err.contains("bytes"),
        "{err}"
    );
    assert!(err.contains("device = cpu"), "suggests a way out: {err}");
    assert!(!err.contains("--"), "in library terms: {err}");
}

#[test]
fn a_lost_device_fails_the_next_step_with_an_error() {
    // A device of its own: destroying the shared one would break the other tests.
    let ctx = match hourglass::gpu::GpuContext::new(None) {
        Ok(ctx) => ctx,
        Err(e) => {
            assert!(std::env::var("CI").is_err(), "CI needs a GPU adapter: {e}");
            return;
        }
    };
    let mut g = Graph::default();
    let x = g.matrix("x", 4, 8);
    let y = g.matrix("y", 4, 8);
    g.push(Op::Activation {
        x,
        y,
        act: Activation::Sigmoid,
    });
    let mut exec = GpuExecutor::new(ctx.clone(), g).expect("executor");
    exec.run(0..1, &[StepParams::default()])
        .expect("runs before");
    ctx.device.destroy();
    let result = exec
        .run(0..1, &[StepParams::default()])
        .and_then(|_| exec.read(y).map(|_| ()));
    let err = result
        .expect_err("a destroyed device cannot run")
        .to_string();
    assert!(err.starts_with("GPU error"), "{err}");
}
