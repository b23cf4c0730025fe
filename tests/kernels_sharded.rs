//! The random kernels of one rank's share of a batch (data-parallel training): with
//! `StepParams::row_base` / `rows_global` set, the noise, projections and VAE samples of a
//! share are those of the same rows of the whole batch on the CPU, and the GPU kernels draw the
//! CPU's numbers, on awkward shapes (1, 7, 33, 257 rows; a share of one row; K·B rows).

mod common;

use hourglass::cpu::regularizers::{corrupt, directions, sample};
use hourglass::graph::{DType, Graph, Op, StepParams, Tensor};
use hourglass::model::Noise;

fn step() -> StepParams {
    StepParams {
        step: 3,
        seed_lo: 0x9E37_79B9,
        seed_hi: 0x0000_BEEF,
        ..Default::default()
    }
}

/// Rank `base..base + rows` of a global batch of `global` rows.
fn share(base: usize, global: usize) -> StepParams {
    StepParams {
        row_base: base as u32,
        rows_global: global as u32,
        ..step()
    }
}

/// (global batch, first row of the share, rows of the share).
const SHARES: [(usize, usize, usize); 5] = [
    (1, 0, 1),
    (7, 3, 1),
    (7, 4, 3),
    (33, 11, 11),
    (257, 128, 129),
];

#[test]
fn a_share_draws_the_noise_of_its_rows_of_the_whole_batch() {
    let cols = 33;
    for (global, base, rows) in SHARES {
        for noise in [
            Noise::Mask { nu: 0.3 },
            Noise::Gaussian { sigma: 0.5 },
            Noise::SaltPepper { nu: 0.2 },
        ] {
            let x = common::random(global * cols, 0.5, 1.5, 7);
            let mut whole = vec![0.0f32; global * cols];
            corrupt(noise, &step(), cols, &x, &mut whole);
            let part = &x[base * cols..(base + rows) * cols];
            let mut got = vec![0.0f32; rows * cols];
            corrupt(noise, &share(base, global), cols, part, &mut got);
            assert_eq!(
                got,
                whole[base * cols..(base + rows) * cols],
                "{noise:?}: rows {base}..{} of {global}",
                base + rows
            );
        }
    }
}

#[test]
fn a_share_draws_the_projections_and_samples_of_its_rows() {
    let (k, cols) = (3, 7);
    for (global, base, rows) in SHARES {
        let mut whole = vec![0.0f32; k * global * cols];
        directions(&step(), cols, global, false, &mut whole);
        let mut got = vec![0.0f32; k * rows * cols];
        directions(&share(base, global), cols, rows, false, &mut got);
        for kk in 0..k {
            let want = &whole[(kk * global + base) * cols..(kk * global + base + rows) * cols];
            assert_eq!(
                &got[kk * rows * cols..(kk + 1) * rows * cols],
                want,
                "directions k={kk}: rows {base}..{} of {global}",
                base + rows
            );
        }

        let mu = common::random(global * cols, -1.0, 1.0, 1);
        let logvar = common::random(global * cols, -1.0, 1.0, 2);
        let (mut eps, mut z, mut kl) = (
            vec![0.0f32; k * global * cols],
            vec![0.0f32; k * global * cols],
            vec![0.0f32; global],
        );
        sample(&step(), 0.7, &mu, &logvar, &mut eps, &mut z, &mut kl);
        let r = base * cols..(base + rows) * cols;
        let (mut e2, mut z2, mut kl2) = (
            vec![0.0f32; k * rows * cols],
            vec![0.0f32; k * rows * cols],
            vec![0.0f32; rows],
        );
        sample(
            &share(base, global),
            0.7,
            &mu[r.clone()],
            &logvar[r],
            &mut e2,
            &mut z2,
            &mut kl2,
        );
        for kk in 0..k {
            let w = (kk * global + base) * cols..(kk * global + base + rows) * cols;
            assert_eq!(
                &e2[kk * rows * cols..(kk + 1) * rows * cols],
                &eps[w.clone()]
            );
            assert_eq!(&z2[kk * rows * cols..(kk + 1) * rows * cols], &z[w]);
        }
        assert_eq!(kl2, kl[base..base + rows]);
    }
}

fn view(g: &mut Graph, name: &str, rows: usize, cols: usize) -> Tensor {
    let buf = g.buffer(name, rows * cols + 6, DType::F32);
    Tensor {
        buf,
        offset: 3,
        rows,
        cols,
    }
}

#[test]
fn gpu_share_kernels_match_cpu() {
    let (k, cols) = (2, 33);
    let mut worst = 0.0f64;
    for (global, base, rows) in SHARES {
        let mut g = Graph::default();
        let x = view(&mut g, "x", rows, cols);
        let out = view(&mut g, "out", rows, cols);
        g.push(Op::Corrupt {
            x,
            out,
            noise: Noise::Gaussian { sigma: 0.5 },
        });
        let dirs = view(&mut g, "directions", k * rows, cols);
        g.push(Op::Directions {
            out: dirs,
            batch: rows,
            exact: false,
        });
        let mu = view(&mut g, "mu", rows, cols);
        let logvar = view(&mut g, "logvar", rows, cols);
        let eps = view(&mut g, "eps", k * rows, cols);
        let z = view(&mut g, "z", k * rows, cols);
        let kl_rows = view(&mut g, "kl_rows", 1, rows);
        g.push(Op::Sample {
            mu,
            logvar,
            eps,
            z,
            kl_rows,
            beta: 0.7,
        });
        let ops = 0..g.ops.len();
        let e = common::compare_executors(
            &format!("share {base}..{} of {global}", base + rows),
            g,
            ops,
            |_| (-1.0, 1.0),
            &[],
            share(base, global),
            |_| 1e-5,
        );
        worst = worst.max(e);
    }
    eprintln!("sharded random kernels: worst relative error {worst:.2e}");
}
