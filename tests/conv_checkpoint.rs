//! Conv checkpoints are PyTorch's: the names and shapes `nn.Sequential` of `Conv2d`,
//! activations, `Flatten`, `Linear` / `Linear`, `Unflatten`, `ConvTranspose2d` gives, and a
//! forward pass written from PyTorch's definitions alone — modules rebuilt from the spec JSON
//! as `docs/pytorch-conv.md` rebuilds them, tensors looked up by name in the safetensors file,
//! in f64 — reconstructs what `Autoencoder::reconstruct` does on the CPU.

mod common;

use hourglass::io::checkpoint;
use hourglass::model::Variant;
use hourglass::{Activation, Autoencoder, Dataset, Device, ModelSpec, Parameters};
use safetensors::SafeTensors;
use serde_json::Value;

/// A module of the rebuilt `nn.Sequential`s.
#[derive(Debug)]
enum Module {
    Conv2d {
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
    },
    ConvT {
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        op: (usize, usize),
    },
    Linear {
        name: String,
        fin: usize,
        fout: usize,
    },
    Act(String),
    Flatten,
    Unflatten(usize, usize, usize),
}

/// An NCHW image (one example) or a flat vector (h = w = 1 when flat).
#[derive(Clone, Debug)]
struct T {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

fn tensor(st: &SafeTensors, name: &str, shape: &[usize]) -> Vec<f64> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("no tensor {name}"));
    assert_eq!(t.shape(), shape, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
        .collect()
}

/// PyTorch's modules for a spec, by the rules of docs/pytorch-conv.md.
fn sequentials(spec: &Value) -> (Vec<Module>, Option<(Module, Module)>, Vec<Module>) {
    let act = |k: &str| Module::Act(spec[k].as_str().unwrap().to_string());
    let sizes: Vec<usize> = spec["encoder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let dsizes: Vec<usize> = spec["decoder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let vae = spec["variant"]["kind"] == "vae";
    let convs = spec["conv"].as_array().cloned().unwrap_or_default();
    let mut enc = Vec::new();
    let (mut c, mut h, mut w) = match spec.get("input_shape") {
        Some(s) => (
            s["channels"].as_u64().unwrap() as usize,
            s["height"].as_u64().unwrap() as usize,
            s["width"].as_u64().unwrap() as usize,
        ),
        None => (0, 0, 0),
    };
    let mut stages = Vec::new();
    for (i, l) in convs.iter().enumerate() {
        let (o, k, s) = (
            l["channels"].as_u64().unwrap() as usize,
            l["kernel"].as_u64().unwrap() as usize,
            l["stride"].as_u64().unwrap() as usize,
        );
        let p = k / 2;
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let name = format!("encoder.{}", enc.len());
        enc.push(Module::Conv2d {
            name,
            cin: c,
            cout: o,
            k,
            s,
            p,
        });
        let code = i + 1 == convs.len() && sizes.len() == 1;
        enc.push(act(if code {
            "code_activation"
        } else {
            "activation"
        }));
        stages.push((c, h, w, o, oh, ow, k, s, p));
        (c, h, w) = (o, oh, ow);
    }
    if !convs.is_empty() {
        enc.push(Module::Flatten);
    }
    let n = sizes.len() - 1;
    let trunk = if vae { n - 1 } else { n };
    for k in 0..trunk {
        let name = format!("encoder.{}", enc.len());
        enc.push(Module::Linear {
            name,
            fin: sizes[k],
            fout: sizes[k + 1],
        });
        enc.push(act(if k + 1 == n {
            "code_activation"
        } else {
            "activation"
        }));
    }
    let heads = vae.then(|| {
        let lin = |name: &str| Module::Linear {
            name: name.into(),
            fin: sizes[n - 1],
            fout: sizes[n],
        };
        (lin("fc_mu"), lin("fc_logvar"))
    });
    let mut dec = Vec::new();
    let m = dsizes.len() - 1;
    for k in 0..m {
        let name = format!("decoder.{}", dec.len());
        dec.push(Module::Linear {
            name,
            fin: dsizes[k],
            fout: dsizes[k + 1],
        });
        let out = k + 1 == m && convs.is_empty();
        dec.push(act(if out {
            "output_activation"
        } else {
            "activation"
        }));
    }
    if !convs.is_empty() {
        dec.push(Module::Unflatten(c, h, w));
    }
    for (j, &(ic, ih, iw, o, oh, ow, k, s, p)) in stages.iter().rev().enumerate() {
        let op = (
            ih - ((oh - 1) * s + k - 2 * p),
            iw - ((ow - 1) * s + k - 2 * p),
        );
        let name = format!("decoder.{}", dec.len());
        dec.push(Module::ConvT {
            name,
            cin: o,
            cout: ic,
            k,
            s,
            p,
            op,
        });
        dec.push(act(if j + 1 == stages.len() {
            "output_activation"
        } else {
            "activation"
        }));
    }
    (enc, heads, dec)
}

fn apply(st: &SafeTensors, m: &Module, x: T) -> T {
    match m {
        Module::Flatten => T {
            c: x.c * x.h * x.w,
            h: 1,
            w: 1,
            v: x.v,
        },
        Module::Unflatten(c, h, w) => {
            assert_eq!(x.v.len(), c * h * w);
            T {
                c: *c,
                h: *h,
                w: *w,
                v: x.v,
            }
        }
        Module::Act(a) => {
            let f = |z: f64| match a.as_str() {
                "identity" => z,
                "relu" => z.max(0.0),
                "leaky_relu" => {
                    if z > 0.0 {
                        z
                    } else {
                        0.01 * z
                    }
                }
                "sigmoid" => 1.0 / (1.0 + (-z).exp()),
                "tanh" => z.tanh(),
                other => panic!("activation {other}"),
            };
            T {
                v: x.v.iter().map(|&z| f(z)).collect(),
                ..x
            }
        }
        Module::Linear { name, fin, fout } => {
            let wt = tensor(st, &format!("{name}.weight"), &[*fout, *fin]);
            let b = tensor(st, &format!("{name}.bias"), &[*fout]);
            let v = (0..*fout)
                .map(|o| b[o] + (0..*fin).map(|i| wt[o * fin + i] * x.v[i]).sum::<f64>())
                .collect();
            T {
                c: *fout,
                h: 1,
                w: 1,
                v,
            }
        }
        Module::Conv2d {
            name,
            cin,
            cout,
            k,
            s,
            p,
        } => {
            let (k, s, p) = (*k, *s, *p as isize);
            let wt = tensor(st, &format!("{name}.weight"), &[*cout, *cin, k, k]);
            let b = tensor(st, &format!("{name}.bias"), &[*cout]);
            assert_eq!(x.c, *cin);
            let oh = (x.h + 2 * p as usize - k) / s + 1;
            let ow = (x.w + 2 * p as usize - k) / s + 1;
            let mut v = vec![0.0; cout * oh * ow];
            for o in 0..*cout {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = b[o];
                        for c in 0..*cin {
                            for a in 0..k {
                                for e in 0..k {
                                    let (y, xx) =
                                        ((i * s + a) as isize - p, (j * s + e) as isize - p);
                                    if y >= 0
                                        && xx >= 0
                                        && (y as usize) < x.h
                                        && (xx as usize) < x.w
                                    {
                                        acc += wt[((o * cin + c) * k + a) * k + e]
                                            * x.v[(c * x.h + y as usize) * x.w + xx as usize];
                                    }
                                }
                            }
                        }
                        v[(o * oh + i) * ow + j] = acc;
                    }
                }
            }
            T {
                c: *cout,
                h: oh,
                w: ow,
                v,
            }
        }
        Module::ConvT {
            name,
            cin,
            cout,
            k,
            s,
            p,
            op,
        } => {
            // PyTorch: H_out = (H_in − 1)·s − 2p + k + output_padding; each input pixel
            // scatters its kernel-weighted value, weight [in, out, k, k].
            let (k, s, p) = (*k, *s, *p);
            let wt = tensor(st, &format!("{name}.weight"), &[*cin, *cout, k, k]);
            let b = tensor(st, &format!("{name}.bias"), &[*cout]);
            assert_eq!(x.c, *cin);
            let oh = (x.h - 1) * s + k + op.0 - 2 * p;
            let ow = (x.w - 1) * s + k + op.1 - 2 * p;
            let mut v: Vec<f64> = (0..cout * oh * ow).map(|i| b[i / (oh * ow)]).collect();
            for ci in 0..*cin {
                for i in 0..x.h {
                    for j in 0..x.w {
                        let xv = x.v[(ci * x.h + i) * x.w + j];
                        for co in 0..*cout {
                            for a in 0..k {
                                for e in 0..k {
                                    let (y, xx) = (
                                        (i * s + a) as isize - p as isize,
                                        (j * s + e) as isize - p as isize,
                                    );
                                    if y >= 0 && xx >= 0 && (y as usize) < oh && (xx as usize) < ow
                                    {
                                        v[(co * oh + y as usize) * ow + xx as usize] +=
                                            xv * wt[((ci * cout + co) * k + a) * k + e];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            T {
                c: *cout,
                h: oh,
                w: ow,
                v,
            }
        }
    }
}

/// The file's reconstruction of every row by the rebuilt modules.
fn torch_like_reconstruct(bytes: &[u8], data: &Dataset) -> Vec<f64> {
    let (_, meta) = SafeTensors::read_metadata(bytes).expect("header");
    let spec: Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["hourglass.spec"]).unwrap();
    let st = SafeTensors::deserialize(bytes).expect("safetensors");
    let (enc, heads, dec) = sequentials(&spec);
    // A strict load_state_dict: the file holds exactly the modules' parameters.
    let mut want: Vec<String> = enc
        .iter()
        .chain(&dec)
        .chain(heads.iter().flat_map(|(a, b)| [a, b]))
        .filter_map(|m| match m {
            Module::Conv2d { name, .. }
            | Module::ConvT { name, .. }
            | Module::Linear { name, .. } => Some(name.clone()),
            _ => None,
        })
        .flat_map(|n| [format!("{n}.weight"), format!("{n}.bias")])
        .collect();
    want.sort();
    let mut have: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    have.sort();
    assert_eq!(have, want, "state_dict keys");
    let shape = spec.get("input_shape");
    let mut out = Vec::new();
    for r in 0..data.rows {
        let row: Vec<f64> = data.row(r).iter().map(|&v| v as f64).collect();
        let mut x = match shape {
            Some(s) => T {
                c: s["channels"].as_u64().unwrap() as usize,
                h: s["height"].as_u64().unwrap() as usize,
                w: s["width"].as_u64().unwrap() as usize,
                v: row,
            },
            None => T {
                c: row.len(),
                h: 1,
                w: 1,
                v: row,
            },
        };
        for m in &enc {
            x = apply(&st, m, x);
        }
        if let Some((mu, _)) = &heads {
            x = apply(&st, mu, x);
        }
        for m in &dec {
            x = apply(&st, m, x);
        }
        out.extend(x.v);
    }
    out
}

fn spec(s: &str, act: Activation, variant: Variant, tied: bool) -> ModelSpec {
    let mut spec = ModelSpec::from_encoder_str(s).unwrap();
    spec.activation = act;
    spec.code_activation = Activation::Tanh;
    spec.variant = variant;
    spec.tied = tied;
    spec.validate().unwrap();
    spec
}

#[test]
fn the_issue_model_has_pytorch_names_and_shapes() {
    let spec = ModelSpec::from_encoder_str("1x28x28,conv32k3s2,conv64k3s2,32").unwrap();
    let params = Parameters::init(&spec, 0);
    let got: Vec<(String, Vec<usize>)> = params
        .layout
        .tensors()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let want: Vec<(String, Vec<usize>)> = [
        ("encoder.0.weight", vec![32, 1, 3, 3]),
        ("encoder.0.bias", vec![32]),
        ("encoder.2.weight", vec![64, 32, 3, 3]),
        ("encoder.2.bias", vec![64]),
        ("encoder.5.weight", vec![32, 3136]),
        ("encoder.5.bias", vec![32]),
        ("decoder.0.weight", vec![3136, 32]),
        ("decoder.0.bias", vec![3136]),
        ("decoder.3.weight", vec![64, 32, 3, 3]),
        ("decoder.3.bias", vec![32]),
        ("decoder.5.weight", vec![32, 1, 3, 3]),
        ("decoder.5.bias", vec![1]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(got, want);
    // PyTorch's default init: U(±1/√fan_in) with fan_in = weight.size(1)·k², for weights
    // and biases alike, the dense layers of a conv model included (k = 1); 2,119,936 MACs per
    // example forward (the conv_ae workload's count).
    for (name, fan_in) in [
        ("encoder.0.weight", 9.0f32),
        ("encoder.0.bias", 9.0),
        ("encoder.2.weight", 32.0 * 9.0),
        ("encoder.5.weight", 3136.0),
        ("encoder.5.bias", 3136.0),
        ("decoder.0.weight", 32.0),
        ("decoder.0.bias", 32.0),
        ("decoder.3.weight", 32.0 * 9.0),
        ("decoder.3.bias", 32.0 * 9.0),
        ("decoder.5.weight", 9.0),
    ] {
        let v = params.get(name).unwrap();
        let bound = 1.0 / fan_in.sqrt();
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound && max > 0.8 * bound,
            "{name}: max |w| {max}, bound {bound}"
        );
    }
    let stages = spec.conv_stages().unwrap();
    let conv: usize = stages.iter().map(|s| s.macs()).sum();
    assert_eq!(2 * conv + 2 * 3136 * 32, 2_119_936);
}

#[test]
fn a_dense_only_model_keeps_he_and_glorot_weights_and_zero_biases() {
    // 784-512-256-32 with ReLU: He-uniform √(6/fan_in) before a ReLU, Glorot-uniform
    // √(6/(fan_in+fan_out)) into the identity code and the logits; every bias zero.
    let spec = ModelSpec::from_encoder_str("784,512,256,32").unwrap();
    let params = Parameters::init(&spec, 0);
    for (name, bound) in [
        ("encoder.0.weight", (6.0f32 / 784.0).sqrt()),
        ("encoder.2.weight", (6.0f32 / 512.0).sqrt()),
        ("encoder.4.weight", (6.0f32 / (256.0 + 32.0)).sqrt()),
        ("decoder.0.weight", (6.0f32 / 32.0).sqrt()),
        ("decoder.4.weight", (6.0f32 / (512.0 + 784.0)).sqrt()),
    ] {
        let v = params.get(name).unwrap();
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound && max > 0.9 * bound,
            "{name}: max |w| {max}, bound {bound}"
        );
    }
    for t in params
        .layout
        .tensors()
        .filter(|t| t.name.ends_with(".bias"))
    {
        let v = params.get(&t.name).unwrap();
        assert!(v.iter().all(|&x| x == 0.0), "{}: not zero", t.name);
    }
}

#[test]
fn a_forward_pass_from_pytorch_definitions_matches_reconstruct() {
    let cases = [
        spec(
            "1x7x7,conv4k3s2,conv3,5",
            Activation::Relu,
            Variant::Plain,
            false,
        ),
        spec(
            "2x5x6,conv3k5s2,conv2k2,4",
            Activation::LeakyRelu,
            Variant::Plain,
            false,
        ),
        spec(
            "3x6x5,conv4k1s2,conv2k3s3",
            Activation::Tanh,
            Variant::Plain,
            false,
        ),
        spec(
            "1x7x7,conv4k3s2,conv3s2,6",
            Activation::Sigmoid,
            Variant::Plain,
            true,
        ),
        spec(
            "1x6x6,conv3k3s2,4,3",
            Activation::Relu,
            Variant::Vae {
                beta: 1.0,
                samples: 1,
            },
            false,
        ),
    ];
    let mut worst = 0.0f64;
    for (i, spec) in cases.iter().enumerate() {
        let params = Parameters::init(spec, 7 + i as u64);
        let bytes = checkpoint::to_bytes(spec, &params).unwrap();
        let n = 5;
        let data = Dataset::new(
            n,
            spec.input_dim(),
            common::random(n * spec.input_dim(), 0.0, 1.0, 9),
        )
        .unwrap();
        let want = torch_like_reconstruct(&bytes, &data);
        let (spec2, params2) = checkpoint::from_bytes(&bytes).unwrap();
        let mut model = Autoencoder::new(spec2, params2, Device::Cpu).unwrap();
        let got = model.reconstruct(&data).unwrap();
        assert_eq!(got.values.len(), want.len());
        for (k, (g, w)) in got.values.iter().zip(&want).enumerate() {
            let e = (*g as f64 - w).abs();
            assert!(
                e < 1e-5 + 1e-5 * w.abs(),
                "{}: element {k}: got {g}, PyTorch definitions {w}",
                spec.to_json()
            );
            worst = worst.max(e);
        }
    }
    eprintln!("worst |reconstruct − reference| {worst:.2e}");
}
