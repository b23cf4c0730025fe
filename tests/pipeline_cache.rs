//! The on-disk pipeline cache: written to the caller's cache folder after pipelines compile, a
//! corrupt or foreign file is ignored rather than trusted, and without a cache folder nothing
//! is written anywhere. (One binary: its second test sets HOME and XDG_CACHE_HOME.)

mod common;

use std::path::{Path, PathBuf};

use hourglass::gpu::{GpuContext, GpuExecutor, GpuOptions};
use hourglass::graph::{Graph, Op, StepParams};
use hourglass::model::Activation;

fn run_once(options: &GpuOptions) -> Vec<f32> {
    let ctx = GpuContext::with_options(options).expect("adapter (the shared helper checked one)");
    let mut g = Graph::default();
    let x = g.matrix("x", 3, 5);
    let y = g.matrix("y", 3, 5);
    g.push(Op::Activation {
        x,
        y,
        act: Activation::Tanh,
    });
    let mut exec = GpuExecutor::new(ctx, g).expect("executor");
    exec.write(x.buf, &common::random(15, -2.0, 2.0, 3))
        .expect("a float write");
    exec.run(0..1, &[StepParams::default()]).expect("run");
    exec.read(y).expect("read")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[test]
fn pipeline_cache_is_written_and_a_corrupt_one_is_ignored() {
    if common::gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hourglass-pcache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = GpuOptions {
        cache_dir: Some(dir.clone()),
        ..common::gpu_options()
    };
    let ctx = GpuContext::with_options(&options).expect("adapter");
    let supported = ctx
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE);
    drop(ctx);
    let first = run_once(&options);
    let written = files(&dir);
    if !supported {
        // The GL backend has no pipeline cache: nothing to write, and the kernels still run.
        assert!(
            written.is_empty(),
            "no cache without the feature: {written:?}"
        );
        return;
    }
    assert_eq!(
        written.len(),
        1,
        "one cache file for this adapter: {written:?}"
    );
    std::fs::write(&written[0], b"not a pipeline cache at all").expect("corrupt it");
    assert_eq!(
        run_once(&options),
        first,
        "a corrupt cache file changes nothing"
    );
    // Turned off, the folder is left alone.
    let _ = std::fs::remove_dir_all(&dir);
    run_once(&GpuOptions {
        pipeline_cache: false,
        ..options
    });
    assert!(
        files(&dir).is_empty(),
        "pipeline_cache false writes no pipeline cache"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_cache_folder_nothing_is_written_wherever_the_environment_points() {
    if common::gpu().is_none() {
        return;
    }
    let home = std::env::temp_dir().join(format!("hourglass-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("temp home");
    // SAFETY: the variables are set before any executor starts in this test; the other test
    // of this binary passes its folder explicitly and reads neither.
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("XDG_CACHE_HOME", home.join("xdg"));
    }
    let options = common::gpu_options();
    assert_eq!(options.cache_dir, None);
    run_once(&options);
    let graph = {
        let mut g = Graph::default();
        let a = g.matrix("a", 70, 40);
        let b = g.matrix("b", 40, 90);
        let c = g.matrix("c", 70, 90);
        g.push(Op::Matmul {
            a,
            b,
            c,
            trans_a: false,
            trans_b: false,
            epilogue: hourglass::graph::Epilogue::Store,
            gradient: None,
            loss_scale: None,
        });
        g
    };
    // Tile measurements on: they would be kept beside the pipeline cache if there were a folder.
    let ctx = GpuContext::with_options(&GpuOptions {
        autotune: hourglass::gpu::Autotune::On,
        ..options
    })
    .expect("adapter");
    GpuExecutor::new(ctx.clone(), graph).expect("executor");
    assert_eq!(ctx.tiles_measured(), 1, "the product was measured");
    // The driver may keep its own shader cache there (Mesa's mesa_shader_cache): that is the
    // driver's, configured by the driver's variables. Hourglass's folder must not exist.
    let mut ours = Vec::new();
    let mut stack = vec![home.clone()];
    while let Some(d) = stack.pop() {
        for p in files(&d) {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.contains("hourglass") || n.ends_with(".tiles")) {
                ours.push(p.clone());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    assert!(
        ours.is_empty(),
        "Hourglass wrote under HOME or XDG_CACHE_HOME: {ours:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
