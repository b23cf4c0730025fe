//! The regularized variants do on real images what they are for (Fashion-MNIST from Debian's
//! `dataset-fashion-mnist`, on the CPU path, small subsets): each assertion compares against a
//! plain autoencoder of the same size trained the same way, with a margin.

use std::path::Path;

use hourglass::data::{Dataset, idx::read_idx};
use hourglass::infer::{Autoencoder, evaluate, jacobian_norms};
use hourglass::model::{Activation, Loss, ModelSpec, Noise, Parameters, Variant};
use hourglass::rng::{Sequence, Stream, gaussian_f32};
use hourglass::train::{Device, TrainConfig, Trainer};

const DIR: &str = "/usr/share/datasets/fashion-mnist";

fn subset(file: &str, rows: usize) -> Dataset {
    let path = Path::new(DIR).join(file);
    let all = read_idx(&path).unwrap_or_else(|e| {
        panic!("{e}: these tests need Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    });
    Dataset::new(rows, all.cols, all.values[..rows * all.cols].to_vec()).expect("subset")
}

fn train_and_test() -> (Dataset, Dataset) {
    (
        subset("train-images-idx3-ubyte.gz", 4000),
        subset("t10k-images-idx3-ubyte.gz", 1000),
    )
}

fn train(spec: &ModelSpec, data: &Dataset, epochs: u64) -> Parameters {
    let config = TrainConfig {
        seed: 11,
        ..TrainConfig::new(64, 2e-3)
    };
    let mut t = Trainer::new(spec, &config, data, &Device::Cpu, None).expect("trainer");
    t.train_steps(epochs * t.steps_per_epoch(), false)
        .expect("train");
    t.parameters().expect("params")
}

fn spec(encoder: &[usize], variant: Variant) -> ModelSpec {
    let mut s = ModelSpec::mirrored(encoder);
    s.variant = variant;
    s
}

#[test]
fn sparse_code_has_most_units_near_zero() {
    let (train_set, test_set) = train_and_test();
    let mut plain = spec(&[784, 128, 64], Variant::Plain);
    plain.code_activation = Activation::Relu;
    let mut sparse = plain.clone();
    sparse.variant = Variant::Sparse {
        lambda: 1.0,
        target: None,
    };
    let near_zero = |s: &ModelSpec| {
        let p = train(s, &train_set, 4);
        let codes = Autoencoder::new(s.clone(), p, Device::Cpu)
            .expect("model")
            .encode(&test_set)
            .expect("encode");
        let small = codes.values.iter().filter(|v| v.abs() < 0.05).count();
        small as f64 / codes.values.len() as f64
    };
    let (fp, fs) = (near_zero(&plain), near_zero(&sparse));
    eprintln!(
        "code units |h| < 0.05: plain {:.1}%, sparse {:.1}%",
        100.0 * fp,
        100.0 * fs
    );
    assert!(
        fs > 0.7,
        "sparse code: only {:.1}% of units near zero",
        100.0 * fs
    );
    assert!(fs > fp + 0.2, "sparse {fs:.3} vs plain {fp:.3}");
}

#[test]
fn denoising_model_reconstructs_masked_images_better() {
    let (train_set, test_set) = train_and_test();
    let noise = Noise::Mask { nu: 0.5 };
    let plain = spec(&[784, 128, 32], Variant::Plain);
    let denoising = spec(&[784, 128, 32], Variant::Denoising { noise });
    // Score both on the same masked test images against the clean ones.
    let masked_loss = |p: &Parameters| {
        evaluate(&denoising, p, &test_set, &Device::Cpu, 5)
            .expect("evaluate")
            .term("reconstruction")
            .expect("term")
    };
    let lp = masked_loss(&train(&plain, &train_set, 4));
    let ld = masked_loss(&train(&denoising, &train_set, 4));
    eprintln!("masked (ν = 0.5) test reconstruction loss: plain {lp:.2}, denoising {ld:.2}");
    assert!(ld < 0.95 * lp, "denoising {ld} vs plain {lp}");
}

#[test]
fn contractive_model_has_a_smaller_jacobian_on_test_data() {
    let (train_set, test_set) = train_and_test();
    let mut plain = spec(&[784, 64], Variant::Plain);
    plain.code_activation = Activation::Sigmoid;
    let mut contractive = plain.clone();
    contractive.variant = Variant::Contractive {
        lambda: 3.0,
        projections: None,
    };
    let mean_norm = |s: &ModelSpec| {
        let p = train(s, &train_set, 4);
        let n = jacobian_norms(s, &p, &test_set, &Device::Cpu).expect("norms");
        n.iter().sum::<f64>() / n.len() as f64
    };
    let (jp, jc) = (mean_norm(&plain), mean_norm(&contractive));
    eprintln!("mean ‖J‖_F on test images: plain {jp:.3}, contractive {jc:.3}");
    assert!(jc < 0.7 * jp, "contractive {jc} vs plain {jp}");
}

#[test]
fn vae_has_positive_kl_and_its_samples_are_images() {
    let (train_set, test_set) = train_and_test();
    let mut vae = spec(
        &[784, 256, 16],
        Variant::Vae {
            beta: 1.0,
            samples: 1,
        },
    );
    vae.loss = Loss::Bce;
    let params = train(&vae, &train_set, 4);
    let report = evaluate(&vae, &params, &test_set, &Device::Cpu, 1).expect("evaluate");
    let kl = report.term("kl").expect("kl term");
    eprintln!("VAE test loss: {report}");
    assert!(kl > 1.0, "KL {kl} should be clearly positive");
    let mut model = Autoencoder::new(vae, params, Device::Cpu).expect("model");
    let mut rng = Sequence::new(4, Stream::Sampler, 0);
    let z: Vec<f32> = (0..64 * 16)
        .map(|_| gaussian_f32(rng.next_u32(), rng.next_u32()))
        .collect();
    let images = model
        .decode(&Dataset::new(64, 16, z).expect("codes"))
        .expect("decode");
    assert_eq!((images.rows, images.cols), (64, 784));
    assert!(images.values.iter().all(|v| (0.0..=1.0).contains(v)));
    // Not a constant image: samples differ from each other.
    let spread = images
        .row(0)
        .iter()
        .zip(images.row(1))
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>();
    assert!(spread > 1.0, "samples differ ({spread})");
}
