//! The executors' public API returns errors, never panics, on what a caller can get wrong: a
//! graph that does not validate (missing buffers, views past their end, a float op on an index
//! buffer), writes and reads of the wrong dtype or length, op ranges outside the graph, and
//! more steps in one GPU submission than the step ring holds, range reads of the wrong buffer
//! or past its end.

mod common;

use hourglass::cpu::CpuExecutor;
use hourglass::gpu::executor::MAX_STEPS_PER_SUBMIT;
use hourglass::gpu::{BufferCopy, GpuExecutor};
use hourglass::graph::{Graph, Op, StepParams, Tensor};
use hourglass::model::Activation;

fn tanh_graph() -> (Graph, Tensor, Tensor, Tensor) {
    let mut g = Graph::default();
    let x = g.matrix("x", 2, 3);
    let y = g.matrix("y", 2, 3);
    let idx = g.u32_matrix("order", 1, 4);
    g.push(Op::Activation {
        x,
        y,
        act: Activation::Tanh,
    });
    (g, x, y, idx)
}

fn err<T>(r: hourglass::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_graph_that_does_not_validate_is_an_error() {
    let (mut g, x, _, idx) = tanh_graph();
    let missing = Tensor { buf: 99, ..x };
    g.push(Op::Activation {
        x,
        y: missing,
        act: Activation::Relu,
    });
    let e = err(CpuExecutor::<f32>::new(g));
    assert!(e.contains("missing buffer 99"), "{e}");

    // A float op on the index buffer.
    let (mut g, x, _, _) = tanh_graph();
    g.push(Op::Activation {
        x: Tensor {
            rows: 1,
            cols: 4,
            ..x
        },
        y: idx,
        act: Activation::Relu,
    });
    let e = err(CpuExecutor::<f32>::new(g));
    assert!(e.contains("needs F32") && e.contains("'order'"), "{e}");

    // A product whose inner sizes disagree (2×3 by 4×5) would index past its operands.
    let mut g = Graph::default();
    let (a, b, c) = (
        g.matrix("a", 2, 3),
        g.matrix("b", 4, 5),
        g.matrix("c", 2, 5),
    );
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
    let e = err(CpuExecutor::<f32>::new(g.clone()));
    assert!(e.contains("2×3 by 4×5"), "{e}");
    if let Some(ctx) = common::gpu() {
        assert!(err(GpuExecutor::new(ctx, g)).contains("2×3 by 4×5"));
    }
}

#[test]
fn gpu_refuses_a_loss_scale_that_does_not_start_its_buffer() {
    let Some(ctx) = common::gpu() else { return };
    let product = |offset| {
        let mut g = Graph::default();
        let (a, b, c) = (
            g.matrix("a", 2, 3),
            g.matrix("b", 3, 2),
            g.matrix("c", 2, 2),
        );
        let state = g.matrix("scales", 1, 8);
        g.push(Op::Matmul {
            a,
            b,
            c,
            trans_a: false,
            trans_b: false,
            epilogue: hourglass::graph::Epilogue::Store,
            gradient: Some(hourglass::graph::Operand::A),
            loss_scale: Some(Tensor {
                offset,
                cols: 4,
                ..state
            }),
        });
        g
    };
    // The CPU executor reads the view where it is; the GPU kernels would read element 0.
    CpuExecutor::<f32>::new(product(4)).expect("the CPU takes any offset");
    let e = err(GpuExecutor::new(ctx.clone(), product(4)));
    assert!(
        e.contains("op 0") && e.contains("element 4 of buffer 3 ('scales')"),
        "{e}"
    );
    GpuExecutor::new(ctx, product(0)).expect("a state at element 0");
}

#[test]
fn cpu_reads_writes_and_runs_check_what_they_are_given() {
    let (g, x, y, idx) = tanh_graph();
    let mut cpu = CpuExecutor::<f32>::new(g).expect("valid graph");
    assert!(err(cpu.write(idx.buf, &[1.0])).contains("holds indices"));
    assert!(err(cpu.write_u32(x.buf, &[1])).contains("holds floats"));
    assert!(err(cpu.write(x.buf, &[0.0; 7])).contains("7 values do not fit"));
    assert!(err(cpu.write(42, &[0.0])).contains("buffer 42 does not exist"));
    assert!(err(cpu.read(idx.buf)).contains("holds indices"));
    assert!(err(cpu.view_u32(x)).contains("holds floats"));
    let past = Tensor { offset: 4, ..y };
    assert!(err(cpu.view(past)).contains("runs past buffer"));
    let e = err(cpu.run(0..2, &[StepParams::default()]));
    assert!(e.contains("ops 0..2") && e.contains("1 ops"), "{e}");
    // And what is right still works.
    cpu.write(x.buf, &[0.5; 6]).unwrap();
    cpu.run(0..1, &[StepParams::default()]).unwrap();
    assert!((cpu.view(y).unwrap()[0] - 0.5f32.tanh()).abs() < 1e-6);
}

#[test]
fn gpu_runs_check_their_steps_and_ops() {
    let Some(ctx) = common::gpu() else { return };
    let (g, _, y, _) = tanh_graph();
    let mut dev = GpuExecutor::new(ctx, g).expect("executor");
    let steps = vec![StepParams::default(); MAX_STEPS_PER_SUBMIT + 1];
    let e = err(dev.run(0..1, &steps));
    assert!(
        e.contains(&format!("at most {MAX_STEPS_PER_SUBMIT}")),
        "{e}"
    );
    let e = err(dev.run_and_read(0..3, &[StepParams::default()], y));
    assert!(e.contains("ops 0..3"), "{e}");
    // The executor is still usable after refusing.
    dev.run(0..1, &steps[..MAX_STEPS_PER_SUBMIT])
        .expect("64 steps run");
}

#[test]
fn gpu_reads_writes_and_buffers_check_what_they_are_given() {
    let Some(ctx) = common::gpu() else { return };
    let (g, x, y, idx) = tanh_graph();
    let mut dev = GpuExecutor::new(ctx.clone(), g).expect("executor");
    let one_step = [StepParams::default()];
    // The same refusals as the CPU executor's, in the same words.
    let e = err(dev.write(idx.buf, &[1.0]));
    assert!(e.contains("buffer 2 ('order') holds indices"), "{e}");
    let e = err(dev.write_u32(x.buf, &[1]));
    assert!(e.contains("buffer 0 ('x') holds floats"), "{e}");
    let e = err(dev.write(x.buf, &[0.0; 7]));
    assert!(e.contains("7 values do not fit buffer 0 ('x') of 6"), "{e}");
    let e = err(dev.write_u32(idx.buf, &[0; 5]));
    assert!(
        e.contains("5 values do not fit buffer 2 ('order') of 4"),
        "{e}"
    );
    for e in [
        err(dev.write(42, &[0.0])),
        err(dev.write_u32(42, &[0])),
        err(dev.buffer(42)),
        err(dev.read_buffer(42)),
        err(dev.read(Tensor { buf: 42, ..x })),
        err(dev.run_and_read(0..1, &one_step, Tensor { buf: 42, ..y })),
    ] {
        assert!(
            e.contains("buffer 42 does not exist (the graph has 3)"),
            "{e}"
        );
    }
    assert!(err(dev.read(idx)).contains("buffer 2 ('order') holds indices"));
    assert!(err(dev.read_buffer(idx.buf)).contains("holds indices"));
    assert!(err(dev.read_u32(x)).contains("buffer 0 ('x') holds floats"));
    assert!(err(dev.run_and_read(0..1, &one_step, idx)).contains("holds indices"));
    let past = Tensor { offset: 4, ..y };
    for e in [
        err(dev.read(past)),
        err(dev.run_and_read(0..1, &one_step, past)),
    ] {
        assert!(
            e.contains("a view of elements 4..10 runs past buffer 1 ('y') of 6"),
            "{e}"
        );
    }
    let app = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("application"),
        size: 64,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let copy = |tensor| BufferCopy {
        buffer: &app,
        offset: 0,
        tensor,
    };
    let e = err(dev.run_with_copies(Some(copy(Tensor { buf: 42, ..x })), 0..1, &one_step, None));
    assert!(e.contains("buffer 42 does not exist"), "{e}");
    let e = err(dev.run_with_copies(None, 0..1, &one_step, Some(copy(past))));
    assert!(e.contains("runs past buffer 1 ('y') of 6"), "{e}");

    // Nothing refused was written, and what is right still works.
    dev.write(x.buf, &[0.5; 6]).expect("a float write");
    dev.write_u32(idx.buf, &[3, 2, 1, 0])
        .expect("an index write");
    let out = dev.run_and_read(0..1, &one_step, y).expect("run and read");
    assert!(
        out.iter().all(|v| (v - 0.5f32.tanh()).abs() < 1e-6),
        "{out:?}"
    );
    assert_eq!(dev.read_u32(idx).expect("read indices"), vec![3, 2, 1, 0]);
    assert_eq!(dev.read_buffer(x.buf).expect("read floats"), vec![0.5; 6]);
    assert!(dev.buffer(x.buf).expect("a buffer").size() >= 24);
}

#[test]
// Lists of one range are what a bucket of one range passes.
#[allow(clippy::single_range_in_vec_init)]
fn gpu_range_reads_check_their_ranges_and_copy_only_them() {
    let Some(ctx) = common::gpu() else { return };
    let (g, x, y, idx) = tanh_graph();
    let mut dev = GpuExecutor::new(ctx, g).expect("executor");
    let one_step = [StepParams::default()];
    let run = |ops| {
        [hourglass::graph::Segment {
            ops,
            steps: &one_step,
        }]
    };
    let e = err(dev.submit_and_copy(&run(0..1), 42, &[0..1]));
    assert!(
        e.contains("buffer 42 does not exist (the graph has 3)"),
        "{e}"
    );
    let e = err(dev.submit_and_copy(&run(0..1), idx.buf, &[0..1]));
    assert!(e.contains("buffer 2 ('order') holds indices"), "{e}");
    let e = err(dev.submit_and_copy(&run(0..1), y.buf, &[0..2, 5..7]));
    assert!(
        e.contains("elements 5..7 are not a range of buffer 1 ('y') of 6"),
        "{e}"
    );
    #[allow(clippy::reversed_empty_ranges)]
    let e = err(dev.submit_and_copy(&run(0..1), y.buf, &[3..2]));
    assert!(e.contains("elements 3..2 are not a range"), "{e}");
    let e = err(dev.submit_and_copy(&run(0..3), y.buf, &[0..1]));
    assert!(e.contains("ops 0..3"), "{e}");

    // Two submissions in flight, each with its own staging buffer: the first run's ranges
    // (in the order given) and the second's, waited for in the reverse order.
    let values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6f32];
    dev.write(x.buf, &values).expect("a float write");
    let first = dev
        .submit_and_copy(&run(0..1), y.buf, &[4..6, 0..1, 2..2])
        .expect("a range read");
    dev.write(x.buf, &[-1.0; 6]).expect("a float write");
    let second = dev
        .submit_and_copy(&run(0..1), y.buf, &[1..3])
        .expect("a range read");
    let close = |got: Vec<f32>, want: &[f32]| {
        assert_eq!(got.len(), want.len(), "{got:?} for {want:?}");
        let far = got
            .iter()
            .zip(want)
            .any(|(g, w)| (g - w.tanh()).abs() > 1e-6);
        assert!(!far, "{got:?}, not tanh of {want:?}");
    };
    close(second.wait().expect("the second read"), &[-1.0; 2]);
    close(
        first.wait().expect("the first read"),
        &[values[4], values[5], values[0]],
    );
    assert_eq!(dev.staging_pool_len(), 2);
    // A copy without ops, and an empty one; the pool's buffers are reused.
    let again = dev.submit_and_copy(&[], y.buf, &[0..6]).expect("a copy");
    close(again.wait().expect("a read"), &[-1.0; 6]);
    let none = dev.submit_and_copy(&[], y.buf, &[]).expect("an empty copy");
    assert!(none.wait().expect("an empty read").is_empty());
    assert_eq!(dev.staging_pool_len(), 2);
}
