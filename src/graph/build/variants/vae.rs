//! The variational autoencoder: after the encoder's trunk, the μ and log σ² heads and the
//! sampler `z = μ + σ·ε` (several draws per input when asked) feed the decoder, and the KL
//! term β KL(q(z|x) ‖ N(0, I)) joins the loss. Backward, the gradient at z goes through the
//! sampler and both heads into the trunk.

use crate::graph::build::LossTerm;
use crate::graph::build::backward::GradWriter;
use crate::graph::build::layer::{Layer, single};
use crate::graph::build::variants::{Forward, Regularizer};
use crate::graph::{Epilogue, Graph, Op, Tensor};
use crate::model::{Activation, ParamLayout, Role};

/// What the forward pass of the heads and the sampler wrote, for their backward pass.
#[derive(Clone, Copy)]
struct Sampled {
    mu: Tensor,
    logvar: Tensor,
    eps: Tensor,
}

/// The heads of `layout`, the KL weight `beta` and the draws per input `samples`.
pub(super) struct Vae<'l> {
    mu_head: Box<dyn Layer + 'l>,
    logvar_head: Box<dyn Layer + 'l>,
    beta: f32,
    samples: u32,
    sampled: Option<Sampled>,
}

impl<'l> Vae<'l> {
    pub fn new(layout: &'l ParamLayout, beta: f32, samples: u32) -> Self {
        Vae {
            mu_head: single(layout, Role::Mu),
            logvar_head: single(layout, Role::LogVar),
            beta,
            samples,
            sampled: None,
        }
    }
}

impl Regularizer for Vae<'_> {
    fn code(
        &mut self,
        g: &mut Graph,
        params: Tensor,
        trunk: Tensor,
        activations: &mut Vec<Tensor>,
        terms: &mut Vec<LossTerm>,
    ) -> (Tensor, Tensor) {
        let batch = trunk.rows;
        let mu = self.mu_head.forward(g, params, trunk, Activation::Identity);
        let logvar = self
            .logvar_head
            .forward(g, params, trunk, Activation::Identity);
        activations.extend([mu, logvar]);
        let r = self.samples as usize * batch;
        let eps = g.matrix("vae.eps", r, mu.cols);
        let z = g.matrix("vae.z", r, mu.cols);
        let kl_rows = g.matrix("kl.rows", 1, batch);
        g.push(Op::Sample {
            mu,
            logvar,
            eps,
            z,
            kl_rows,
            beta: self.beta,
        });
        terms.push(LossTerm {
            name: "kl",
            values: kl_rows,
            scale: 1.0 / batch as f64,
        });
        self.sampled = Some(Sampled { mu, logvar, eps });
        (mu, z)
    }

    /// The gradient at z, stored.
    fn decoder_input_grad(&self, g: &mut Graph, f: &Forward) -> (Tensor, Option<Epilogue>) {
        let z = f.decoder_input;
        let dz = g.matrix("vae.z.grad", z.rows, z.cols);
        (dz, Some(Epilogue::Store))
    }

    /// Through the sampler to μ and log σ², the heads' parameter gradients, and both heads'
    /// input gradients summed into the trunk's output gradient.
    fn grad_to_encoder(
        &mut self,
        g: &mut Graph,
        w: &mut GradWriter,
        f: &Forward,
        dcode: Tensor,
    ) -> Option<Tensor> {
        let Sampled { mu, logvar, eps } = self.sampled.expect("code() ran before");
        let (batch, trunk) = (f.batch, f.trunk);
        let dmu = g.matrix("fc_mu.out.grad", batch, mu.cols);
        let dlogvar = g.matrix("fc_logvar.out.grad", batch, mu.cols);
        g.push(Op::SampleGrad {
            dz: dcode,
            eps,
            mu,
            logvar,
            dmu,
            dlogvar,
            beta: self.beta,
        });
        self.mu_head.param_grads(g, w, dmu, trunk);
        self.logvar_head.param_grads(g, w, dlogvar, trunk);
        f.enc.last().map(|last| {
            let last = last.spec();
            let dt = g.matrix(format!("{}.out.grad", last.name), batch, trunk.cols);
            self.mu_head
                .input_grad(g, f.params, dmu, dt, Epilogue::Store, true);
            let epilogue = Epilogue::AccumulateActGrad {
                y: trunk,
                act: last.activation,
            };
            self.logvar_head
                .input_grad(g, f.params, dlogvar, dt, epilogue, true);
            dt
        })
    }
}
