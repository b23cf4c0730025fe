//! The conv ops' WGSL kernels (shaders/conv2d*.wgsl) against their CPU twins (src/cpu/conv.rs)
//! and both against the direct f64 definition (src/cpu/conv_reference.rs), on awkward shapes:
//! odd sizes, one and three channels, strides 1 and 2, kernels 1, 3 and 5, batches 1 and 33,
//! feature maps smaller than the kernel, padding 0 and k/2, views at non-zero offsets, every
//! epilogue. Then the algebra: the input gradient is the adjoint of the forward product, and
//! the weight gradient matches finite differences through an activation.

mod common;

use common::{gpu, random};
use hourglass::cpu::CpuExecutor;
use hourglass::cpu::conv_reference as reference;
use hourglass::gpu::GpuExecutor;
use hourglass::gpu::executor::RowLayout;
use hourglass::graph::{ConvShape, DType, Epilogue, Graph, Op, StepParams, Tensor};
use hourglass::model::Activation;

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

#[allow(clippy::too_many_arguments)]
fn shape(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    s: usize,
    p: usize,
) -> ConvShape {
    ConvShape::new(b, c, h, w, o, k, s, p).expect("a valid shape")
}

/// (batch, in_c, in_h, in_w, out_c, kernel, stride, pad).
fn shapes() -> Vec<ConvShape> {
    vec![
        shape(1, 1, 7, 5, 3, 3, 1, 1),
        shape(33, 3, 5, 7, 4, 3, 2, 1),
        shape(2, 3, 9, 6, 5, 5, 2, 2),
        shape(3, 1, 6, 7, 2, 1, 1, 0),
        shape(1, 3, 2, 3, 4, 5, 1, 2), // the map is smaller than the kernel
        shape(2, 3, 7, 7, 3, 3, 2, 0),
        shape(1, 1, 1, 1, 2, 3, 1, 1),
        shape(33, 1, 9, 9, 3, 5, 2, 2),
        shape(40, 2, 8, 8, 3, 3, 1, 1), // weight gradient split in K chunks
        shape(8, 3, 16, 16, 65, 3, 1, 1), // 64×64 tiles
    ]
}

/// A `rows × cols` view at offset 3 of a buffer with 5 elements of slack.
fn view(g: &mut Graph, name: &str, rows: usize, cols: usize) -> Tensor {
    let buf = g.buffer(name, rows * cols + 5, DType::F32);
    Tensor {
        buf,
        offset: 3,
        rows,
        cols,
    }
}

/// `|got − want| ≤ atol + rtol·|want|` everywhere, else a panic naming the worst element.
/// Returns the worst `|got − want| / (atol + rtol·|want|)`.
fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst = (0.0f64, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs() / (atol + rtol * w.abs());
        let e = if e.is_nan() { f64::INFINITY } else { e };
        if e > worst.0 {
            worst = (e, i);
        }
    }
    let (e, i) = worst;
    assert!(
        e <= 1.0,
        "{what}: element {i} got {} want {} ({e:.2} × the tolerance {atol:.0e} + {rtol:.0e}·|want|)",
        got[i],
        want[i]
    );
    e
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Every buffer's contents, by buffer id.
type Buffers = Vec<Vec<f32>>;

/// Runs `graph` (its float buffers filled with seeded values in [-1, 1), or [0.05, 0.95) for
/// those named `y*`, activation outputs) on the CPU twin and the GPU; returns the filled inputs
/// and both executors' buffers after the run.
fn run(graph: &Graph) -> (Buffers, Buffers, Buffers) {
    let mut cpu = CpuExecutor::<f32>::new(graph.clone()).unwrap();
    let ctx = gpu().expect("a GPU adapter");
    let mut dev = GpuExecutor::new(ctx, graph.clone()).expect("GPU executor");
    let mut inputs = Vec::new();
    for (id, desc) in graph.buffers.iter().enumerate() {
        let (lo, hi) = if desc.name.starts_with('y') {
            (0.05, 0.95)
        } else {
            (-1.0, 1.0)
        };
        let v = random(desc.len, lo, hi, 500 + id as u64);
        cpu.write(id, &v).unwrap();
        dev.write(id, &v).expect("a float write");
        inputs.push(v);
    }
    let step = StepParams::default();
    cpu.run(0..graph.ops.len(), &[step]).unwrap();
    dev.run(0..graph.ops.len(), &[step]).expect("GPU run");
    let cpu_out = (0..graph.buffers.len())
        .map(|i| cpu.read(i).unwrap().to_vec())
        .collect();
    let dev_out = (0..graph.buffers.len())
        .map(|i| dev.read_buffer(i).expect("read back"))
        .collect();
    (inputs, cpu_out, dev_out)
}

fn part(v: &[f32], t: Tensor) -> Vec<f64> {
    f64s(&v[t.offset..t.end()])
}

/// What `epilogue` makes of the plain products `acc` of a result with `channels` channels of
/// `positions` elements per row, given the result's old value and the epilogue operand's values.
fn apply(
    epilogue: &Epilogue,
    acc: &[f64],
    old: &[f64],
    operand: &[f64],
    (channels, positions): (usize, usize),
) -> Vec<f64> {
    let grad = |act: Activation, y: f64| match act {
        Activation::Identity => 1.0,
        Activation::Relu => f64::from(u8::from(y > 0.0)),
        Activation::LeakyRelu => {
            if y > 0.0 {
                1.0
            } else {
                0.01
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
    };
    let activate = |act: Activation, x: f64| match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu => {
            if x > 0.0 {
                x
            } else {
                0.01 * x
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
    };
    (0..acc.len())
        .map(|i| match *epilogue {
            Epilogue::Store => acc[i],
            Epilogue::Accumulate => old[i] + acc[i],
            Epilogue::BiasAct { act, .. } => {
                activate(act, acc[i] + operand[(i / positions) % channels])
            }
            Epilogue::ActGrad { act, .. } => acc[i] * grad(act, operand[i]),
            Epilogue::AccumulateActGrad { act, .. } => (old[i] + acc[i]) * grad(act, operand[i]),
        })
        .collect()
}

/// Every epilogue, its operands declared in `g` for a result `[rows, cols]` with `channels`
/// channels.
fn epilogues(g: &mut Graph, rows: usize, cols: usize, channels: usize) -> Vec<Epilogue> {
    vec![
        Epilogue::Store,
        Epilogue::BiasAct {
            bias: view(g, "bias", 1, channels),
            act: Activation::Tanh,
        },
        Epilogue::BiasAct {
            bias: view(g, "bias_relu", 1, channels),
            act: Activation::Relu,
        },
        Epilogue::ActGrad {
            y: view(g, "y_sigmoid", rows, cols),
            act: Activation::Sigmoid,
        },
        Epilogue::Accumulate,
        Epilogue::AccumulateActGrad {
            y: view(g, "y_tanh", rows, cols),
            act: Activation::Tanh,
        },
    ]
}

/// One forward or input-gradient op per epilogue (each into its own result), run on both
/// executors and compared with each other and with the definition.
fn check_product(s: &ConvShape, input_grad: bool, all_epilogues: bool) -> f64 {
    let mut g = Graph::default();
    let (src_len, dst_len, dst_channels) = if input_grad {
        (s.out_len(), s.in_len(), s.in_c)
    } else {
        (s.in_len(), s.out_len(), s.out_c)
    };
    let src = view(&mut g, "src", s.batch, src_len);
    let w = view(&mut g, "w", s.out_c, s.taps());
    let mut eps = epilogues(&mut g, s.batch, dst_len, dst_channels);
    if !all_epilogues {
        eps.truncate(2);
    }
    let mut outs = Vec::new();
    for (i, &epilogue) in eps.iter().enumerate() {
        let out = view(&mut g, &format!("out{i}"), s.batch, dst_len);
        g.push(if input_grad {
            Op::Conv2dInputGrad {
                dy: src,
                w,
                dx: out,
                shape: *s,
                epilogue,
            }
        } else {
            Op::Conv2d {
                x: src,
                w,
                y: out,
                shape: *s,
                epilogue,
            }
        });
        outs.push(out);
    }
    let (inputs, cpu, dev) = run(&g);
    let (x, wv) = (part(&inputs[src.buf], src), part(&inputs[w.buf], w));
    let acc = if input_grad {
        reference::conv2d_input_grad(s, &x, &wv)
    } else {
        reference::conv2d(s, &x, &wv)
    };
    let mut worst = 0.0f64;
    for (epilogue, out) in eps.iter().zip(outs) {
        let operand = epilogue
            .operand()
            .map_or(vec![], |t| part(&inputs[t.buf], t));
        let want = apply(
            epilogue,
            &acc,
            &part(&inputs[out.buf], out),
            &operand,
            (dst_channels, dst_len / dst_channels),
        );
        let what = format!(
            "{} {s:?} {epilogue:?}",
            if input_grad { "input grad" } else { "forward" }
        );
        close(
            &format!("{what}: CPU twin"),
            &part(&cpu[out.buf], out),
            &want,
            ATOL,
            RTOL,
        );
        worst = worst.max(close(
            &format!("{what}: GPU"),
            &part(&dev[out.buf], out),
            &want,
            ATOL,
            RTOL,
        ));
        // Outside the view, nothing changed.
        for v in [&cpu[out.buf], &dev[out.buf]] {
            assert_eq!(
                v[..out.offset],
                inputs[out.buf][..out.offset],
                "{what}: before the view"
            );
            assert_eq!(
                v[out.end()..],
                inputs[out.buf][out.end()..],
                "{what}: after the view"
            );
        }
    }
    worst
}

#[test]
fn conv2d_forward_matches_the_definition() {
    let mut worst = 0.0f64;
    for (i, s) in shapes().iter().enumerate() {
        worst = worst.max(check_product(s, false, i < 3));
    }
    eprintln!("conv2d forward: worst error {worst:.3} × tolerance");
}

#[test]
fn conv2d_input_grad_matches_the_definition() {
    let mut worst = 0.0f64;
    for (i, s) in shapes().iter().enumerate() {
        worst = worst.max(check_product(s, true, i < 3));
    }
    eprintln!("conv2d input grad: worst error {worst:.3} × tolerance");
}

#[test]
fn conv2d_weight_grad_and_channel_sum_match_the_definition() {
    let mut worst = 0.0f64;
    for s in shapes() {
        let mut g = Graph::default();
        let x = view(&mut g, "x", s.batch, s.in_len());
        let dy = view(&mut g, "dy", s.batch, s.out_len());
        let dw = view(&mut g, "dw", s.out_c, s.taps());
        let dw_acc = view(&mut g, "dw_acc", s.out_c, s.taps());
        let db = view(&mut g, "db", 1, s.out_c);
        let db_acc = view(&mut g, "db_acc", 1, s.out_c);
        for (out, accumulate) in [(dw, false), (dw_acc, true)] {
            g.push(Op::Conv2dWeightGrad {
                x,
                dy,
                dw: out,
                shape: s,
                accumulate,
            });
        }
        for (out, accumulate) in [(db, false), (db_acc, true)] {
            g.push(Op::ChannelSum {
                x: dy,
                out,
                channels: s.out_c,
                accumulate,
            });
        }
        let (inputs, cpu, dev) = run(&g);
        let (xv, dyv) = (part(&inputs[x.buf], x), part(&inputs[dy.buf], dy));
        let grad = reference::conv2d_weight_grad(&s, &xv, &dyv);
        let sums = reference::channel_sum(&dyv, s.out_len(), s.out_c);
        let plus = |a: &[f64], t: Tensor| -> Vec<f64> {
            a.iter()
                .zip(part(&inputs[t.buf], t))
                .map(|(a, b)| a + b)
                .collect()
        };
        let cases = [
            ("weight grad", dw, grad.clone()),
            ("weight grad, accumulate", dw_acc, plus(&grad, dw_acc)),
            ("channel sum", db, sums.clone()),
            ("channel sum, accumulate", db_acc, plus(&sums, db_acc)),
        ];
        // Sums over the whole batch: the tolerance grows with their length.
        let atol = ATOL * (s.batch * s.out_positions()) as f64 / 16.0;
        for (what, t, want) in cases {
            let what = format!("{what} {s:?}");
            close(
                &format!("{what}: CPU twin"),
                &part(&cpu[t.buf], t),
                &want,
                atol,
                RTOL,
            );
            worst = worst.max(close(
                &format!("{what}: GPU"),
                &part(&dev[t.buf], t),
                &want,
                atol,
                RTOL,
            ));
        }
    }
    eprintln!("conv2d weight grad / channel sum: worst error {worst:.3} × tolerance");
}

/// The bias gradient at every row layout (`RowLayout`, a channel's batch × positions being its
/// row): conv_ae's last layer (one channel of 256 × 784, split over 128 workgroups), three
/// channels of 3 × 30,000 (43 pieces each), 300 short channels packed two to a workgroup, and
/// seven of 33 kept whole; overwriting and accumulating, against the f64 definition and the CPU
/// twin.
#[test]
fn channel_sum_matches_the_definition_at_every_row_layout() {
    let shapes = [(256, 1, 784), (3, 3, 30_000), (1, 300, 7), (1, 7, 33)];
    let layouts: Vec<RowLayout> = shapes
        .iter()
        .map(|&(b, c, p)| RowLayout::new(c, b * p, 4))
        .collect();
    assert_eq!(
        layouts
            .iter()
            .map(|l| (l.pack(), l.splits))
            .collect::<Vec<_>>(),
        [(1, 128), (1, 43), (2, 1), (1, 1)]
    );
    let mut worst = 0.0f64;
    for (batch, channels, positions) in shapes {
        let mut g = Graph::default();
        let dy = view(&mut g, "dy", batch, channels * positions);
        let db = view(&mut g, "db", 1, channels);
        let db_acc = view(&mut g, "db_acc", 1, channels);
        for (out, accumulate) in [(db, false), (db_acc, true)] {
            g.push(Op::ChannelSum {
                x: dy,
                out,
                channels,
                accumulate,
            });
        }
        let (inputs, cpu, dev) = run(&g);
        let sums =
            reference::channel_sum(&part(&inputs[dy.buf], dy), channels * positions, channels);
        let acc: Vec<f64> = sums
            .iter()
            .zip(part(&inputs[db_acc.buf], db_acc))
            .map(|(a, b)| a + b)
            .collect();
        let atol = ATOL * (batch * positions) as f64 / 16.0;
        for (what, t, want) in [("channel sum", db, &sums), ("accumulate", db_acc, &acc)] {
            let what = format!("{what} B={batch} C={channels} P={positions}");
            close(
                &format!("{what}: CPU twin"),
                &part(&cpu[t.buf], t),
                want,
                atol,
                RTOL,
            );
            worst = worst.max(close(
                &format!("{what}: GPU"),
                &part(&dev[t.buf], t),
                want,
                atol,
                RTOL,
            ));
        }
    }
    eprintln!("channel sum (row layouts): worst error {worst:.3} × tolerance");
}

/// ⟨Conv2d(x), dy⟩ = ⟨x, Conv2dInputGrad(dy)⟩ on the GPU and on the CPU twin in f64.
#[test]
fn the_input_gradient_is_the_adjoint_of_the_forward_product() {
    for s in shapes().into_iter().take(8) {
        let mut g = Graph::default();
        let x = view(&mut g, "x", s.batch, s.in_len());
        let dy = view(&mut g, "dy", s.batch, s.out_len());
        let w = view(&mut g, "w", s.out_c, s.taps());
        let y = view(&mut g, "out_y", s.batch, s.out_len());
        let dx = view(&mut g, "out_dx", s.batch, s.in_len());
        let store = Epilogue::Store;
        g.push(Op::Conv2d {
            x,
            w,
            y,
            shape: s,
            epilogue: store,
        });
        g.push(Op::Conv2dInputGrad {
            dy,
            w,
            dx,
            shape: s,
            epilogue: store,
        });
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        let (inputs, cpu, dev) = run(&g);
        let (xv, dyv) = (part(&inputs[x.buf], x), part(&inputs[dy.buf], dy));
        for (name, out) in [("GPU", &dev), ("CPU twin", &cpu)] {
            let lhs = dot(&part(&out[y.buf], y), &dyv);
            let rhs = dot(&xv, &part(&out[dx.buf], dx));
            let scale = (s.macs() as f64).sqrt();
            assert!(
                (lhs - rhs).abs() <= 1e-5 * scale,
                "{name} {s:?}: <conv(x), dy> = {lhs} but <x, conv_t(dy)> = {rhs}"
            );
        }
        // In f64, to rounding.
        let mut scratch = hourglass::cpu::conv::ConvScratch::default();
        let wv = part(&inputs[w.buf], w);
        let mut y64 = vec![0.0; dyv.len()];
        let mut dx64 = vec![0.0; xv.len()];
        use hourglass::cpu::conv as twin;
        use hourglass::cpu::kernels::CpuEpilogue;
        twin::conv2d(&s, &xv, &wv, &mut y64, CpuEpilogue::Store, &mut scratch);
        twin::conv2d_input_grad(&s, &dyv, &wv, &mut dx64, CpuEpilogue::Store, &mut scratch);
        let (lhs, rhs) = (dot(&y64, &dyv), dot(&xv, &dx64));
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
            "f64 {s:?}: {lhs} vs {rhs}"
        );
    }
}

/// The weight gradient of L(w) = Σ r ⊙ tanh(conv2d(x, w) + b), through the twins in f64, against
/// central differences of L.
#[test]
fn the_weight_gradient_matches_finite_differences() {
    use hourglass::cpu::conv as twin;
    use hourglass::cpu::kernels::CpuEpilogue;
    for s in [
        shape(2, 3, 6, 5, 4, 3, 2, 1),
        shape(1, 1, 3, 4, 2, 5, 1, 2),
        shape(3, 2, 5, 5, 3, 1, 1, 0),
    ] {
        let mut scratch = twin::ConvScratch::default();
        let x = f64s(&random(s.batch * s.in_len(), -1.0, 1.0, 1));
        let w = f64s(&random(s.weight_len(), -0.5, 0.5, 2));
        let bias = f64s(&random(s.out_c, -0.5, 0.5, 3));
        let r = f64s(&random(s.batch * s.out_len(), -1.0, 1.0, 4));
        let loss = |w: &[f64], scratch: &mut twin::ConvScratch<f64>| {
            let mut y = vec![0.0; r.len()];
            let ep = CpuEpilogue::BiasAct(&bias, Activation::Tanh);
            twin::conv2d(&s, &x, w, &mut y, ep, scratch);
            (y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>(), y)
        };
        let (_, y) = loss(&w, &mut scratch);
        // dL/dz = r · tanh'(z), then the weight gradient.
        let dz: Vec<f64> = r.iter().zip(&y).map(|(r, y)| r * (1.0 - y * y)).collect();
        let mut dw = vec![0.0; w.len()];
        twin::conv2d_weight_grad(&s, &x, &dz, &mut dw, false, &mut scratch);
        let h = 1e-6;
        for i in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up, &mut scratch).0 - loss(&down, &mut scratch).0) / (2.0 * h);
            assert!(
                (fd - dw[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{s:?} weight {i}: finite difference {fd} but the gradient says {}",
                dw[i]
            );
        }
        // The bias gradient: the channel sums of dz.
        let mut db = vec![0.0; s.out_c];
        twin::channel_sum(&dz, s.out_len(), s.out_c, &mut db, false);
        for c in 0..s.out_c {
            let mut loss_b = |delta: f64| {
                let mut b = bias.clone();
                b[c] += delta;
                let mut y = vec![0.0; r.len()];
                twin::conv2d(
                    &s,
                    &x,
                    &w,
                    &mut y,
                    CpuEpilogue::BiasAct(&b, Activation::Tanh),
                    &mut scratch,
                );
                y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
            };
            let fd = (loss_b(h) - loss_b(-h)) / (2.0 * h);
            assert!(
                (fd - db[c]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{s:?} bias {c}: {fd} vs {}",
                db[c]
            );
        }
    }
}

/// Views that do not match the op's shape are refused by graph validation, and the GPU
/// executor refuses a grid it cannot launch rather than panicking.
#[test]
fn mismatched_views_are_refused() {
    let s = shape(2, 3, 5, 5, 4, 3, 1, 1);
    let mut g = Graph::default();
    let x = g.matrix("x", 2, s.in_len() + 1);
    let w = g.matrix("w", s.out_c, s.taps());
    let y = g.matrix("y", 2, s.out_len());
    g.push(Op::Conv2d {
        x,
        w,
        y,
        shape: s,
        epilogue: Epilogue::Store,
    });
    let e = g.validate().unwrap_err();
    assert!(e.contains("Conv2d") && e.contains("input"), "{e}");
    let mut g = Graph::default();
    let x = g.matrix("x", 2, s.in_len());
    let out = g.matrix("out", 1, 5);
    g.push(Op::ChannelSum {
        x,
        out,
        channels: 4,
        accumulate: false,
    });
    assert!(g.validate().is_err());
}

/// An input gradient whose columns exceed one GPU scratch buffer: the batch goes through in
/// chunks of images. (The other limit, more than 65,535 column blocks folded into the grid's
/// z, needs 65,536 workgroups: 16 s on lavapipe, so it is not exercised here.)
#[test]
fn a_large_input_gradient_goes_through_in_chunks() {
    // 33 images × 25 taps × 22,500 positions: two chunks of the 16 Mi-float column scratch.
    let chunked = shape(33, 1, 150, 150, 1, 5, 1, 2);
    assert!(33 * chunked.taps() * chunked.out_positions() > 16 << 20);
    check_product(&chunked, true, false);
}

#[test]
fn a_forward_product_past_65535_column_blocks_folds_its_grid_into_z() {
    // One output channel (32×32 tiles), 1×1 kernel: 2,102,500 positions are 65,703 column
    // blocks, more than one grid dimension holds (65,535): the 168 past it run as z = 1
    // (`wg.x + wg.z · groups_x` in shaders/conv2d.wgsl).
    let wide = shape(1, 1, 1450, 1450, 1, 1, 1, 0);
    assert!((wide.batch * wide.out_positions()).div_ceil(32) > 65_535);
    check_product(&wide, false, false);
}
