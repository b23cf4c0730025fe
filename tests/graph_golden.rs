//! The graphs the builder emits, pinned: for every variant (plain, tied, sparse L1 and KL,
//! denoising with each noise, contractive closed-form / exact deep / projections, VAE with one
//! and several samples), both losses and several activations, the training graph (plain,
//! clipped, with a tail step, mixed precision, each optimizer), the inference graphs (encode and
//! decode-only) and the Jacobian graph are printed with `{:?}` (every op with its buffers and
//! constants, every buffer, the layout, the loss terms, the ranges) and hashed. The hashes in
//! `tests/golden/graphs.txt` were made by the builder before it was split into layer and
//! variant modules: a refactoring of the builder must leave every one unchanged, which makes
//! its results bit-identical on both executors.
//!
//! On a mismatch the test names every case that changed and writes what it got, with the full
//! dump of each graph, under `target/tmp/graph_golden/`; a deliberate change of the graphs is
//! accepted by copying that `graphs.txt` over the golden file (and saying why in the commit).

use std::fmt::Write as _;
use std::path::PathBuf;

use hourglass::graph::build::build_training_graph_with_tail;
use hourglass::graph::{
    Graph, Precision, build_inference_graph, build_jacobian_graph, build_training_graph,
    build_training_graph_clipped,
};
use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};
use hourglass::optim::{OptimizerConfig, OptimizerKind};

const GOLDEN: &str = include_str!("golden/graphs.txt");
const BATCH: usize = 5;
const ROWS: usize = 23;
const TAIL: usize = 3;

/// FNV-1a, 64 bits: a hash fixed by its definition, not by the toolchain.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn spec(encoder: &[usize], act: Activation, code: Activation, variant: Variant) -> ModelSpec {
    let mut s = ModelSpec::mirrored(encoder);
    s.activation = act;
    s.code_activation = code;
    s.variant = variant;
    s.validate().expect("a valid spec");
    s
}

/// Every model the graphs are pinned for, named.
fn models() -> Vec<(String, ModelSpec)> {
    use Activation::*;
    let mut m: Vec<(String, ModelSpec)> = Vec::new();
    let deep = [12, 9, 6, 4];
    for act in Activation::ALL {
        m.push((
            format!("plain_{act:?}"),
            spec(&deep, act, Identity, Variant::Plain),
        ));
    }
    m.push((
        "plain_one_layer".into(),
        spec(&[12, 4], Relu, Identity, Variant::Plain),
    ));
    let mut mse = spec(&deep, Tanh, Tanh, Variant::Plain);
    mse.loss = Loss::Mse;
    mse.output_activation = Identity;
    m.push(("plain_mse_identity_out".into(), mse));
    let mut mse_sig = spec(&deep, LeakyRelu, Identity, Variant::Plain);
    mse_sig.loss = Loss::Mse;
    m.push(("plain_mse_sigmoid_out".into(), mse_sig));
    let mut asym = spec(&[12, 8, 4], Relu, Identity, Variant::Plain);
    asym.decoder = vec![4, 10, 7, 12];
    m.push(("plain_asymmetric_decoder".into(), asym));
    for (name, enc) in [("tied", &deep[..]), ("tied_one_layer", &[12, 4][..])] {
        let mut t = spec(enc, Tanh, Sigmoid, Variant::Plain);
        t.tied = true;
        m.push((name.into(), t));
    }
    let l1 = Variant::Sparse {
        lambda: 0.01,
        target: None,
    };
    m.push(("sparse_l1".into(), spec(&deep, Relu, Relu, l1)));
    m.push(("sparse_l1_one_layer".into(), spec(&[12, 4], Relu, Relu, l1)));
    let kl = Variant::Sparse {
        lambda: 0.3,
        target: Some(0.05),
    };
    m.push(("sparse_kl".into(), spec(&deep, Relu, Sigmoid, kl)));
    let mut kl_tied = spec(&[12, 6, 4], Sigmoid, Sigmoid, kl);
    kl_tied.tied = true;
    m.push(("sparse_kl_tied".into(), kl_tied));
    for (name, noise) in [
        ("mask", Noise::Mask { nu: 0.25 }),
        ("gaussian", Noise::Gaussian { sigma: 0.1 }),
        ("saltpepper", Noise::SaltPepper { nu: 0.2 }),
    ] {
        m.push((
            format!("denoising_{name}"),
            spec(&deep, Relu, Identity, Variant::Denoising { noise }),
        ));
    }
    let cae = |projections| Variant::Contractive {
        lambda: 0.1,
        projections,
    };
    m.push((
        "contractive_closed_form".into(),
        spec(&[12, 4], Relu, Sigmoid, cae(None)),
    ));
    let mut cf_tied = spec(&[12, 4], Relu, Sigmoid, cae(None));
    cf_tied.tied = true;
    m.push(("contractive_closed_form_tied".into(), cf_tied));
    m.push((
        "contractive_exact_one_layer_tanh".into(),
        spec(&[12, 4], Relu, Tanh, cae(None)),
    ));
    m.push((
        "contractive_exact_deep".into(),
        spec(&deep, Tanh, Sigmoid, cae(None)),
    ));
    let mut exact_tied = spec(&[12, 6, 4], Sigmoid, Sigmoid, cae(None));
    exact_tied.tied = true;
    m.push(("contractive_exact_tied".into(), exact_tied));
    m.push((
        "contractive_projections_deep".into(),
        spec(&deep, LeakyRelu, Identity, cae(Some(3))),
    ));
    m.push((
        "contractive_projections_one_layer".into(),
        spec(&[12, 4], Relu, Sigmoid, cae(Some(2))),
    ));
    for samples in [1, 3] {
        let v = Variant::Vae { beta: 0.5, samples };
        m.push((
            format!("vae_{samples}_samples"),
            spec(&deep, Relu, Identity, v),
        ));
        m.push((
            format!("vae_{samples}_samples_no_trunk"),
            spec(&[12, 4], Relu, Identity, v),
        ));
    }
    let mut vae_mse = spec(
        &[12, 8, 4],
        Tanh,
        Identity,
        Variant::Vae {
            beta: 1.0,
            samples: 2,
        },
    );
    vae_mse.loss = Loss::Mse;
    vae_mse.output_activation = Identity;
    m.push(("vae_mse".into(), vae_mse));
    m
}

/// Every graph of one model, named, as its `{:?}` dump.
fn graphs(spec: &ModelSpec) -> Vec<(&'static str, String, Graph)> {
    let adam = OptimizerConfig::adam(1e-3);
    let sgd = OptimizerConfig::sgd(1e-2, 0.9);
    let adamw = OptimizerConfig {
        kind: OptimizerKind::Adamw,
        weight_decay: 0.01,
        ..adam
    };
    let mut out = Vec::new();
    let mut train = |name, tg: hourglass::graph::TrainingGraph| {
        out.push((name, format!("{tg:#?}"), tg.graph.clone()));
    };
    train("train", build_training_graph(spec, BATCH, ROWS, &adam));
    train(
        "train_clipped_sgd",
        build_training_graph_clipped(spec, BATCH, ROWS, &sgd, Some(1.5)),
    );
    train(
        "train_tail_adamw",
        build_training_graph_with_tail(spec, BATCH, Some(TAIL), ROWS, &adamw, None, Precision::F32),
    );
    train(
        "train_mixed",
        build_training_graph_with_tail(spec, BATCH, None, ROWS, &adam, None, Precision::Mixed),
    );
    train(
        "train_mixed_tail_clipped",
        build_training_graph_with_tail(
            spec,
            BATCH,
            Some(1),
            ROWS,
            &sgd,
            Some(0.5),
            Precision::Mixed,
        ),
    );
    for (name, decode_only) in [("encode", false), ("decode", true)] {
        let ig = build_inference_graph(spec, BATCH, decode_only);
        out.push((name, format!("{ig:#?}"), ig.graph.clone()));
    }
    if !matches!(spec.variant, Variant::Vae { .. }) {
        let jg = build_jacobian_graph(spec, BATCH);
        out.push(("jacobian", format!("{jg:#?}"), jg.graph.clone()));
    }
    out
}

#[test]
fn every_graph_the_builder_emits_matches_the_golden_hashes() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("graph_golden");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let mut got = String::new();
    for (model, spec) in models() {
        for (kind, dump, graph) in graphs(&spec) {
            graph
                .validate()
                .unwrap_or_else(|e| panic!("{model}/{kind}: {e}"));
            let case = format!("{model}/{kind}");
            writeln!(
                got,
                "{case} {:016x} ops={} buffers={}",
                fnv1a(&dump),
                graph.ops.len(),
                graph.buffers.len()
            )
            .unwrap();
            std::fs::write(dir.join(format!("{model}.{kind}.txt")), &dump).expect("a dump");
        }
    }
    std::fs::write(dir.join("graphs.txt"), &got).expect("the hashes");
    let want: Vec<&str> = GOLDEN.lines().collect();
    let have: Vec<&str> = got.lines().collect();
    let changed: Vec<String> = have
        .iter()
        .filter(|line| !want.contains(line))
        .map(|line| format!("  got  {line}"))
        .chain(
            want.iter()
                .filter(|line| !have.contains(line))
                .map(|line| format!("  want {line}")),
        )
        .collect();
    assert!(
        changed.is_empty() && have.len() == want.len(),
        "{} of {} graphs differ from tests/golden/graphs.txt (dumps in {}):\n{}",
        changed.len(),
        want.len().max(have.len()),
        dir.display(),
        changed.join("\n")
    );
}
