//! Every specialization (the values of a kernel's WGSL `override`s) the executor can request,
//! so that tests translate each one for every target (tests/shaders.rs to SPIR-V,
//! tests/translation.rs to MSL, HLSL and GLSL) without a GPU of that kind, and so that the
//! kernel cache can notice a request outside the list (see
//! [`GpuContext::unlisted_specializations`](crate::gpu::GpuContext::unlisted_specializations)).
//!
//! The lists follow `gpu::executor`'s choices: a matmul's transposes, its epilogue (0 store,
//! 1 bias + activation, 2 activation gradient, 3 accumulate, 4 accumulate + activation
//! gradient; the activation is 0 where the epilogue has none), mixed precision (`HALF`) and the
//! loss-scaled operand (none, A or B, never both); every activation code for the element-wise
//! kernels; every loss and noise code; and both values of every flag.

use crate::gpu::kernels::{Constants, Kernel};
use crate::model::{Activation, Loss};

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The activation codes the kernels switch on.
fn activations() -> impl Iterator<Item = f64> + Clone {
    Activation::ALL.into_iter().map(|a| f64::from(a.code()))
}

/// `(EPILOGUE, ACT)` pairs the executor emits.
fn epilogues() -> Vec<(f64, f64)> {
    let mut v = vec![(0.0, 0.0), (3.0, 0.0)];
    for e in [1.0, 2.0, 4.0] {
        v.extend(activations().map(|a| (e, a)));
    }
    v
}

fn matmul(halves: &[bool]) -> Vec<Constants> {
    let mut all = Vec::new();
    for trans_a in [false, true] {
        for trans_b in [false, true] {
            for (epilogue, act) in epilogues() {
                for &half in halves {
                    for (scale_a, scale_b) in [(false, false), (true, false), (false, true)] {
                        all.push(vec![
                            ("TRANS_A", flag(trans_a)),
                            ("TRANS_B", flag(trans_b)),
                            ("EPILOGUE", epilogue),
                            ("ACT", act),
                            ("HALF", flag(half)),
                            ("SCALE_A", flag(scale_a)),
                            ("SCALE_B", flag(scale_b)),
                        ]);
                    }
                }
            }
        }
    }
    all
}

/// The conv GEMM's modes (0 forward, 2 weight gradient, 3 input-gradient columns; see
/// `gpu::conv`) with every epilogue: a superset of what `gpu::conv` asks for (the weight
/// gradient and the columns only store or accumulate).
fn conv_gemm() -> Vec<Constants> {
    let mut all = Vec::new();
    for mode in [0.0, 2.0, 3.0] {
        for (epilogue, act) in epilogues() {
            all.push(vec![("MODE", mode), ("EPILOGUE", epilogue), ("ACT", act)]);
        }
    }
    all
}

fn one_flag(name: &'static str) -> Vec<Constants> {
    vec![vec![(name, 0.0)], vec![(name, 1.0)]]
}

/// The flag bits of [`crate::graph::StepParams::accumulate_flags`], the overrides of
/// shaders/grad_accumulate.wgsl (so the bits are defined once, in `crate::graph`).
pub(crate) fn grad_accumulate_bits() -> Constants {
    use crate::graph::{ACCUMULATE_FIRST, ACCUMULATE_LAST, ACCUMULATE_STEP};
    vec![
        ("ACCUMULATE_STEP", f64::from(ACCUMULATE_STEP)),
        ("ACCUMULATE_FIRST", f64::from(ACCUMULATE_FIRST)),
        ("ACCUMULATE_LAST", f64::from(ACCUMULATE_LAST)),
    ]
}

fn by_activation() -> Vec<Constants> {
    activations().map(|a| vec![("ACT", a)]).collect()
}

impl Kernel {
    /// Every specialization of this kernel the executor can request (a kernel without
    /// overrides has one, empty).
    pub fn specializations(self) -> Vec<Constants> {
        match self {
            Kernel::Matmul | Kernel::MatmulSmall | Kernel::MatmulLarge => matmul(&[false, true]),
            // Only mixed precision takes the cooperative-matrix kernel.
            Kernel::MatmulCoop => matmul(&[true]),
            Kernel::ActivationForward
            | Kernel::ActivationBackward
            | Kernel::TangentScale
            | Kernel::Curvature
            | Kernel::SparseL1
            | Kernel::SparseKl => by_activation(),
            Kernel::ColumnSum | Kernel::ConvWeightGradSum | Kernel::ChannelSum => {
                one_flag("ACCUMULATE")
            }
            Kernel::Conv2d | Kernel::Conv2dSmall => conv_gemm(),
            Kernel::Col2im => epilogues()
                .into_iter()
                .map(|(e, a)| vec![("EPILOGUE", e), ("ACT", a)])
                .collect(),
            Kernel::ReconstructionLoss => [Loss::Mse, Loss::Bce]
                .into_iter()
                .flat_map(|l| {
                    activations().map(move |a| vec![("LOSS", f64::from(l.code())), ("ACT", a)])
                })
                .collect(),
            Kernel::Corrupt => (0..3).map(|n| vec![("NOISE", f64::from(n))]).collect(),
            Kernel::Directions => one_flag("EXACT"),
            Kernel::Adam => [false, true]
                .into_iter()
                .flat_map(|d| {
                    [false, true].map(|g| vec![("DECOUPLED", flag(d)), ("GUARD", flag(g))])
                })
                .collect(),
            Kernel::Sgd => one_flag("GUARD"),
            Kernel::GradAccumulate => vec![grad_accumulate_bits()],
            Kernel::Gather
            | Kernel::AddInto
            | Kernel::JacobianNorm
            | Kernel::ContractiveUnits
            | Kernel::ContractiveRows
            | Kernel::Sample
            | Kernel::SampleGrad
            | Kernel::SumSquares
            | Kernel::SumSquaresFinal
            | Kernel::CheckFinite
            | Kernel::LossScale
            | Kernel::PsdGain
            | Kernel::PsdGainGrad
            | Kernel::PsdLipschitz
            | Kernel::PsdShrink
            | Kernel::PsdMomentum
            | Kernel::PsdTerms
            | Kernel::PsdRenorm
            | Kernel::RowSum => vec![Vec::new()],
        }
    }

    /// Whether `constants` is one of [`Kernel::specializations`].
    pub fn is_listed(self, constants: &Constants) -> bool {
        self.specializations().iter().any(|c| c == constants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_has_its_specializations_and_they_are_distinct() {
        for k in Kernel::ALL {
            let s = k.specializations();
            assert!(!s.is_empty(), "{k:?}");
            for (i, a) in s.iter().enumerate() {
                assert!(!s[i + 1..].contains(a), "{k:?}: {a:?} twice");
            }
        }
        assert_eq!(Kernel::Matmul.specializations().len(), 2 * 2 * 17 * 2 * 3);
        assert_eq!(Kernel::MatmulCoop.specializations().len(), 2 * 2 * 17 * 3);
        assert!(Kernel::Adam.is_listed(&vec![("DECOUPLED", 1.0), ("GUARD", 0.0)]));
        assert!(!Kernel::Adam.is_listed(&vec![("DECOUPLED", 2.0), ("GUARD", 0.0)]));
    }
}
