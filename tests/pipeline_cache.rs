//! The on-disk pipeline cache: written after pipelines compile, and a corrupt or foreign file is
//! ignored rather than trusted. (One test in its own binary: it sets XDG_CACHE_HOME.)

mod common;

use hourglass::gpu::{GpuContext, GpuExecutor};
use hourglass::graph::{Graph, Op, StepParams};
use hourglass::model::Activation;

fn run_once() -> Vec<f32> {
    let ctx = GpuContext::new(None).expect("adapter (the shared helper checked one exists)");
    let mut g = Graph::default();
    let x = g.matrix("x", 3, 5);
    let y = g.matrix("y", 3, 5);
    g.push(Op::Activation {
        x,
        y,
        act: Activation::Tanh,
    });
    let mut exec = GpuExecutor::new(ctx, g).expect("executor");
    exec.write(x.buf, &common::random(15, -2.0, 2.0, 3));
    exec.run(0..1, &[StepParams::default()]).expect("run");
    exec.read(y).expect("read")
}

#[test]
fn pipeline_cache_is_written_and_a_corrupt_one_is_ignored() {
    if common::gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hourglass-pcache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &dir) };
    let ctx = GpuContext::new(None).expect("adapter");
    let supported = ctx
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE);
    drop(ctx);
    let first = run_once();
    let files: Vec<_> = std::fs::read_dir(dir.join("hourglass"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    if !supported {
        assert!(files.is_empty(), "no cache without the feature");
        return;
    }
    assert_eq!(files.len(), 1, "one cache file for this adapter: {files:?}");
    std::fs::write(&files[0], b"not a pipeline cache at all").expect("corrupt it");
    assert_eq!(run_once(), first, "a corrupt cache file changes nothing");
}
