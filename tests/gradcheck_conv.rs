//! Finite-difference checks, in f64 on the CPU reference, of the gradients of convolutional
//! models: Conv2d and ConvTranspose2d layers inside whole training graphs, with every loss,
//! every activation and every variant (the conv ops sit between dense layers, losses and
//! penalties, not alone).

mod common;

use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};

use common::gradcheck::check;

fn conv(encoder: &str, act: Activation, code: Activation, v: Variant) -> ModelSpec {
    let mut spec = ModelSpec::from_encoder_str(encoder).expect("a valid encoder string");
    spec.activation = act;
    spec.code_activation = code;
    spec.variant = v;
    spec
}

/// Two channels, a non-square map, stride 2 (output_padding 0 in one dimension, 1 in the
/// other), then a dense code.
const SMALL: &str = "2x5x4,conv3k3s2,3";

#[test]
fn conv_gradients_match_for_every_loss_and_activation() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut spec = conv(SMALL, act, act, Variant::Plain);
            spec.output_activation = output;
            spec.loss = loss;
            worst = worst.max(check(&spec));
        }
    }
    eprintln!("conv: worst relative gradient error {worst:.2e}");
}

#[test]
fn deep_fully_convolutional_and_even_kernel_models_have_exact_gradients() {
    let mut worst = 0.0f64;
    // Two conv layers (kernel 1 and 5, strides 1 and 3), no dense layer: the code is the
    // last feature map.
    for s in [
        "1x6x5,conv2k1,conv3k5s3",
        "1x5x5,conv2k2s2,conv2k3,4",
        "3x3x3,conv2k3s2,2,3",
    ] {
        worst = worst.max(check(&conv(
            s,
            Activation::Tanh,
            Activation::Sigmoid,
            Variant::Plain,
        )));
    }
    eprintln!("deep/fully conv/even kernel: worst relative gradient error {worst:.2e}");
}

#[test]
fn conv_variants_have_exact_gradients() {
    let mut worst = 0.0f64;
    let mut specs = Vec::new();
    let mut tied = conv(
        SMALL,
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    tied.tied = true;
    specs.push(tied.clone());
    let mut tied_deep = conv(
        "1x5x5,conv2k3s2,conv2,3",
        Activation::Sigmoid,
        Activation::Tanh,
        Variant::Plain,
    );
    tied_deep.tied = true;
    specs.push(tied_deep);
    specs.push(conv(
        SMALL,
        Activation::Tanh,
        Activation::Tanh,
        Variant::Sparse {
            lambda: 0.3,
            target: None,
        },
    ));
    specs.push(conv(
        SMALL,
        Activation::Relu,
        Activation::Sigmoid,
        Variant::Sparse {
            lambda: 0.7,
            target: Some(0.1),
        },
    ));
    for noise in [
        Noise::Mask { nu: 0.3 },
        Noise::Gaussian { sigma: 0.2 },
        Noise::SaltPepper { nu: 0.2 },
    ] {
        specs.push(conv(
            SMALL,
            Activation::Sigmoid,
            Activation::Tanh,
            Variant::Denoising { noise },
        ));
    }
    for samples in [1, 2] {
        specs.push(conv(
            SMALL,
            Activation::Tanh,
            Activation::Identity,
            Variant::Vae { beta: 0.8, samples },
        ));
    }
    // A conv trunk with a dense hidden layer before the heads.
    specs.push(conv(
        "2x5x4,conv3k3s2,4,2",
        Activation::LeakyRelu,
        Activation::Identity,
        Variant::Vae {
            beta: 1.0,
            samples: 1,
        },
    ));
    for act in Activation::ALL {
        specs.push(conv(
            SMALL,
            act,
            Activation::Sigmoid,
            Variant::Contractive {
                lambda: 0.5,
                projections: Some(2),
            },
        ));
    }
    tied.variant = Variant::Contractive {
        lambda: 0.4,
        projections: Some(3),
    };
    specs.push(tied);
    specs.push(conv(
        "1x5x5,conv2k3s2,conv2",
        Activation::Tanh,
        Activation::Tanh,
        Variant::Contractive {
            lambda: 0.4,
            projections: Some(2),
        },
    ));
    for spec in &specs {
        worst = worst.max(check(spec));
    }
    eprintln!("conv variants: worst relative gradient error {worst:.2e}");
}
