//! Finite-difference checks, in f64 on the CPU reference, of the gradients the training graph
//! computes: every loss, every activation, through a deep autoencoder (the op under test sits in
//! the middle of a graph, not alone).

mod common;

use hourglass::model::{Activation, Loss, ModelSpec, Noise, Variant};

use common::gradcheck::check;

#[test]
fn gradients_match_finite_differences_for_every_loss_and_activation() {
    let mut worst = 0.0f64;
    for act in Activation::ALL {
        for (loss, output) in [
            (Loss::Bce, Activation::Sigmoid),
            (Loss::Mse, Activation::Sigmoid),
            (Loss::Mse, Activation::Identity),
        ] {
            let mut spec = ModelSpec::mirrored(&[6, 5, 3]);
            spec.activation = act;
            spec.code_activation = act;
            spec.output_activation = output;
            spec.loss = loss;
            worst = worst.max(check(&spec));
        }
    }
    eprintln!("worst relative gradient error {worst:.2e}");
}

#[test]
fn gradients_match_with_an_asymmetric_decoder() {
    let mut spec = ModelSpec::mirrored(&[7, 4, 2]);
    spec.decoder = vec![2, 6, 3, 7];
    spec.activation = Activation::Tanh;
    check(&spec);
}

fn variant(encoder: &[usize], act: Activation, code: Activation, v: Variant) -> ModelSpec {
    let mut spec = ModelSpec::mirrored(encoder);
    spec.activation = act;
    spec.code_activation = code;
    spec.variant = v;
    spec
}

#[test]
fn sparse_penalties_have_exact_gradients() {
    let l1 = Variant::Sparse {
        lambda: 0.3,
        target: None,
    };
    check(&variant(&[6, 5, 3], Activation::Tanh, Activation::Tanh, l1));
    check(&variant(
        &[6, 5, 3],
        Activation::Sigmoid,
        Activation::Identity,
        l1,
    ));
    let kl = Variant::Sparse {
        lambda: 0.7,
        target: Some(0.1),
    };
    check(&variant(
        &[6, 5, 3],
        Activation::Relu,
        Activation::Sigmoid,
        kl,
    ));
}

#[test]
fn contractive_penalty_has_exact_gradients_in_all_three_forms() {
    // Closed form: one sigmoid layer.
    let exact = Variant::Contractive {
        lambda: 0.5,
        projections: None,
    };
    check(&variant(
        &[6, 4],
        Activation::Relu,
        Activation::Sigmoid,
        exact,
    ));
    // Exact deep form, through every activation's second derivative.
    for act in Activation::ALL {
        check(&variant(&[6, 5, 3], act, Activation::Tanh, exact));
        check(&variant(&[6, 5, 3], Activation::Sigmoid, act, exact));
    }
    // Stochastic estimate, the projections held fixed.
    let stochastic = Variant::Contractive {
        lambda: 0.5,
        projections: Some(3),
    };
    check(&variant(
        &[6, 5, 3],
        Activation::Tanh,
        Activation::Sigmoid,
        stochastic,
    ));
    check(&variant(
        &[6, 4],
        Activation::Relu,
        Activation::Sigmoid,
        stochastic,
    ));
}

#[test]
fn vae_loss_has_exact_gradients() {
    for (samples, loss) in [(1, Loss::Bce), (3, Loss::Mse)] {
        let mut spec = variant(
            &[6, 5, 3],
            Activation::Tanh,
            Activation::Identity,
            Variant::Vae { beta: 0.8, samples },
        );
        spec.loss = loss;
        check(&spec);
    }
    // No trunk: the heads read the input directly.
    check(&variant(
        &[6, 2],
        Activation::Relu,
        Activation::Identity,
        Variant::Vae {
            beta: 1.0,
            samples: 2,
        },
    ));
}

#[test]
fn denoising_and_tied_models_have_exact_gradients() {
    for noise in [
        Noise::Mask { nu: 0.3 },
        Noise::Gaussian { sigma: 0.2 },
        Noise::SaltPepper { nu: 0.2 },
    ] {
        check(&variant(
            &[6, 5, 3],
            Activation::Sigmoid,
            Activation::Tanh,
            Variant::Denoising { noise },
        ));
    }
    let mut tied = variant(
        &[6, 5, 3],
        Activation::Tanh,
        Activation::Identity,
        Variant::Plain,
    );
    tied.tied = true;
    check(&tied);
    tied.variant = Variant::Contractive {
        lambda: 0.4,
        projections: None,
    };
    check(&tied);
}
