//! The matmul tile is chosen per device by timing both kernels once per product shape, and
//! remembered in the caller's cache folder: a second context reads the choice instead of
//! measuring again. Software adapters are not tuned by default, so this binary turns tuning on
//! for lavapipe (and llvmpipe-GL).

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::gpu::{Autotune, GpuContext, GpuExecutor, GpuOptions};
use hourglass::graph::{Epilogue, Graph, Op, StepParams};

fn products() -> Graph {
    let mut g = Graph::default();
    // (300, 260, 40) can take any of the three tiles; (100, 50, 7) 32×32 or 64×64.
    for (m, n, k) in [(300, 260, 40), (100, 50, 7)] {
        let a = g.matrix("a", k, m);
        let b = g.matrix("b", n, k);
        let c = g.matrix("c", m, n);
        g.push(Op::Matmul {
            a,
            b,
            c,
            trans_a: true,
            trans_b: true,
            epilogue: Epilogue::Store,
            gradient: None,
            loss_scale: None,
        });
    }
    g
}

#[test]
fn tiles_are_measured_once_and_remembered_on_disk() {
    let cache = std::env::temp_dir().join(format!("hourglass-autotune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let Some(_) = common::gpu() else { return };
    let options = GpuOptions {
        autotune: Autotune::On,
        cache_dir: Some(cache.join("hourglass")),
        ..common::gpu_options()
    };
    let ctx = GpuContext::with_options(&options).expect("context");
    let graph = products();
    let mut dev = GpuExecutor::new(ctx.clone(), graph.clone()).expect("executor");
    assert_eq!(ctx.tiles_measured(), 2, "both shapes are timed");
    let file = std::fs::read_dir(cache.join("hourglass"))
        .expect("the cache folder")
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "tiles"))
        .expect("a .tiles file");
    let text = std::fs::read_to_string(file.path()).expect("read");
    let line = text
        .lines()
        .find(|l| l.starts_with("300 260 40 1 1 0 "))
        .unwrap_or_else(|| panic!("no entry for the product in\n{text}"));
    assert!(
        [" 32", " 64", " 128"].iter().any(|t| line.ends_with(t)),
        "{line}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("100 50 7 1 1 0 ")),
        "{text}"
    );

    // The chosen kernel computes what the CPU does.
    let mut cpu = CpuExecutor::<f32>::new(graph.clone()).unwrap();
    for (id, d) in graph.buffers.iter().enumerate() {
        let v = common::random(d.len, -1.0, 1.0, id as u64);
        cpu.write(id, &v).unwrap();
        dev.write(id, &v).expect("a float write");
    }
    cpu.run(0..2, &[StepParams::default()]).unwrap();
    dev.run(0..2, &[StepParams::default()]).expect("run");
    for id in [2, 5] {
        common::assert_close(
            "tuned product",
            &dev.read_buffer(id).unwrap(),
            cpu.read(id).unwrap(),
            1e-5,
        );
    }

    // A new context (a new run) reads the choice instead of measuring.
    let again = GpuContext::with_options(&options).expect("context");
    GpuExecutor::new(again.clone(), graph.clone()).expect("executor");
    assert_eq!(again.tiles_measured(), 0, "the choice came from the file");

    // A damaged file is ignored line by line and the shape measured again.
    std::fs::write(
        file.path(),
        "garbage\n300 260 40 1 1 0 99\n100 50 7 1 1 0 64\n",
    )
    .expect("write");
    let third = GpuContext::with_options(&options).expect("context");
    GpuExecutor::new(third.clone(), graph).expect("executor");
    assert_eq!(third.tiles_measured(), 1);
    let _ = std::fs::remove_dir_all(&cache);

    // Every tile computes what the CPU does, in f32 and mixed precision, for every epilogue.
    for tile in [32, 64, 128] {
        let ctx = GpuContext::with_options(&GpuOptions {
            matmul_tile: Some(tile),
            ..common::gpu_options()
        })
        .expect("context");
        for (m, n, k) in [(1, 1, 1), (7, 33, 257), (129, 130, 17), (33, 300, 65)] {
            for (e, half) in [(0, false), (1, false), (2, true), (3, false), (4, true)] {
                check(&ctx, (m, n, k), e, half, tile);
            }
        }
    }
}

/// One product of `mnk` with epilogue `e` (0..5, as in matmul.wgsl), f32 or mixed, on the
/// context's forced tile against the CPU twin.
fn check(
    ctx: &std::sync::Arc<GpuContext>,
    (m, n, k): (usize, usize, usize),
    e: u32,
    half: bool,
    tile: usize,
) {
    use hourglass::graph::Operand;
    use hourglass::model::Activation;
    let mut g = Graph::default();
    let a = g.matrix("a", m, k);
    let b = g.matrix("b", n, k);
    let c = g.matrix("c", m, n);
    let y = g.matrix("y", m, n);
    let bias = g.matrix("bias", 1, n);
    let scale = g.matrix("scale", 1, 4);
    let epilogue = match e {
        0 => Epilogue::Store,
        1 => Epilogue::BiasAct {
            bias,
            act: Activation::Relu,
        },
        2 => Epilogue::ActGrad {
            y,
            act: Activation::Sigmoid,
        },
        3 => Epilogue::Accumulate,
        _ => Epilogue::AccumulateActGrad {
            y,
            act: Activation::Tanh,
        },
    };
    g.push(Op::Matmul {
        a,
        b,
        c,
        trans_a: false,
        trans_b: true,
        epilogue,
        gradient: half.then_some(Operand::A),
        loss_scale: half.then_some(scale),
    });
    let mut cpu = CpuExecutor::<f32>::new(g.clone()).unwrap();
    let mut dev = GpuExecutor::new(ctx.clone(), g.clone()).expect("executor");
    for (id, d) in g.buffers.iter().enumerate() {
        let v = match d.name.as_str() {
            "scale" => vec![256.0; 4],
            "y" => common::random(d.len, 0.05, 0.95, id as u64),
            _ => common::random(d.len, -1.0, 1.0, id as u64),
        };
        cpu.write(id, &v).unwrap();
        dev.write(id, &v).expect("a float write");
    }
    cpu.run(0..1, &[StepParams::default()]).unwrap();
    dev.run(0..1, &[StepParams::default()]).expect("run");
    common::assert_close(
        &format!("tile {tile}, ({m},{n},{k}), epilogue {e}, half {half}"),
        &dev.read_buffer(c.buf).expect("read"),
        cpu.read(c.buf).unwrap(),
        2e-5,
    );
}
