//! The matmul tile is chosen per device by timing both kernels once per product shape, and
//! remembered on disk: a second context reads the choice instead of measuring again. Software
//! adapters are not tuned by default, so this binary turns tuning on for lavapipe.

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::gpu::{GpuContext, GpuExecutor};
use hourglass::graph::{Epilogue, Graph, Op, StepParams};

fn products() -> Graph {
    let mut g = Graph::default();
    // (300, 260, 40) can take either tile; (100, 50, 7) only the 64×64 one.
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
    // SAFETY: this binary's only test sets the variables before any thread reads them.
    unsafe {
        std::env::set_var("XDG_CACHE_HOME", &cache);
        std::env::set_var("HOURGLASS_AUTOTUNE", "1");
        std::env::remove_var("HOURGLASS_MATMUL_TILE");
    }
    let Some(_) = common::gpu() else { return };
    let ctx = GpuContext::new(None).expect("context");
    let graph = products();
    let mut dev = GpuExecutor::new(ctx.clone(), graph.clone()).expect("executor");
    assert_eq!(ctx.tiles_measured(), 1, "one product shape has a choice");
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
    assert!(line.ends_with(" 64") || line.ends_with(" 128"), "{line}");

    // The chosen kernel computes what the CPU does.
    let mut cpu = CpuExecutor::<f32>::new(graph.clone());
    for (id, d) in graph.buffers.iter().enumerate() {
        let v = common::random(d.len, -1.0, 1.0, id as u64);
        cpu.write(id, &v);
        dev.write(id, &v);
    }
    cpu.run(0..2, &[StepParams::default()]);
    dev.run(0..2, &[StepParams::default()]).expect("run");
    for id in [2, 5] {
        common::assert_close(
            "tuned product",
            &dev.read_buffer(id).unwrap(),
            cpu.read(id),
            1e-5,
        );
    }

    // A new context (a new run) reads the choice instead of measuring.
    let again = GpuContext::new(None).expect("context");
    GpuExecutor::new(again.clone(), graph.clone()).expect("executor");
    assert_eq!(again.tiles_measured(), 0, "the choice came from the file");

    // A damaged file is ignored line by line and the shape measured again.
    std::fs::write(file.path(), "garbage\n300 260 40 1 1 0 99\n").expect("write");
    let third = GpuContext::new(None).expect("context");
    GpuExecutor::new(third.clone(), graph).expect("executor");
    assert_eq!(third.tiles_measured(), 1);
    let _ = std::fs::remove_dir_all(&cache);
}
