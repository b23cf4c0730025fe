//! Convolutional models: the tokens of an encoder string (`1x28x28,conv32k3s2,conv64k3s2,32`),
//! the input shape and conv layers they describe, and the geometry of every stage — what the
//! encoder's `nn.Conv2d` sees and what the decoder's mirrored `nn.ConvTranspose2d` must give
//! back, with the `output_padding` that makes the mirror exact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The shape of one input row as an image: channels × height × width, stored channel-major
/// (PyTorch's `x.flatten(1)` of an NCHW tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels C.
    pub channels: usize,
    /// Height H.
    pub height: usize,
    /// Width W.
    pub width: usize,
}

impl ImageShape {
    /// C·H·W, the width of a row; saturating (an absurd shape is refused by the size checks).
    pub fn len(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// True when a dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

impl FromStr for ImageShape {
    type Err = Error;

    /// `CxHxW` (e.g. `1x28x28`, `3x32x32`), every dimension at least 1.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("encoder token '{s}': {why}"));
        let parts: Vec<&str> = s.split(['x', 'X']).collect();
        let [c, h, w] = parts.as_slice() else {
            return Err(bad("an input shape is CxHxW, e.g. 1x28x28"));
        };
        let dim = |name: &str, v: &str| -> Result<usize> {
            let n: usize = v.parse().map_err(|_| {
                bad(&format!(
                    "the {name} '{v}' is not a whole number (an input shape is CxHxW, e.g. 1x28x28)"
                ))
            })?;
            if n == 0 {
                return Err(bad(&format!("the {name} must be at least 1, got 0")));
            }
            Ok(n)
        };
        Ok(ImageShape {
            channels: dim("channel count", c)?,
            height: dim("height", h)?,
            width: dim("width", w)?,
        })
    }
}

/// One conv layer of an encoder string: `nn.Conv2d(in, channels, kernel, stride,
/// padding=kernel/2)`, square kernel and stride, zero padding, no dilation or groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConvSpec {
    /// Output channels O.
    pub channels: usize,
    /// Kernel size K (odd or even; default 3).
    pub kernel: usize,
    /// Stride S (default 1).
    pub stride: usize,
}

impl ConvSpec {
    /// The zero padding on every side, K/2 (PyTorch `padding=K//2`).
    pub fn pad(&self) -> usize {
        self.kernel / 2
    }
}

impl fmt::Display for ConvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conv{}k{}s{}", self.channels, self.kernel, self.stride)
    }
}

impl FromStr for ConvSpec {
    type Err = Error;

    /// `convO`, `convOkK`, `convOsS` or `convOkKsS` (K defaults to 3, S to 1), each number at
    /// least 1.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::Config(format!("encoder token '{s}': {why}"));
        let form = "a conv layer is convOkKsS: O output channels, kernel K (default 3), \
                    stride S (default 1), e.g. conv32k3s2";
        let rest = s
            .strip_prefix("conv")
            .ok_or_else(|| bad(form.to_string()))?;
        // Split into the channel digits, then optional `k<digits>` and `s<digits>` in order.
        let digits = |t: &str| t.chars().take_while(char::is_ascii_digit).count();
        let n = digits(rest);
        if n == 0 {
            return Err(bad(form.to_string()));
        }
        let number = |what: &str, t: &str| -> Result<usize> {
            let v: usize = t
                .parse()
                .map_err(|_| bad(format!("the {what} '{t}' is too large")))?;
            if v == 0 {
                return Err(bad(format!("the {what} must be at least 1, got 0")));
            }
            Ok(v)
        };
        let channels = number("channel count", &rest[..n])?;
        let mut rest = &rest[n..];
        let mut field = |letter: char, what: &str, default: usize| -> Result<usize> {
            match rest.strip_prefix(letter) {
                Some(t) => {
                    let n = digits(t);
                    if n == 0 {
                        return Err(bad(format!("'{letter}' must be followed by the {what}")));
                    }
                    let v = number(what, &t[..n])?;
                    rest = &t[n..];
                    Ok(v)
                }
                None => Ok(default),
            }
        };
        let kernel = field('k', "kernel size", 3)?;
        let stride = field('s', "stride", 1)?;
        if !rest.is_empty() {
            return Err(bad(form.to_string()));
        }
        Ok(ConvSpec {
            channels,
            kernel,
            stride,
        })
    }
}

/// One token of an encoder string: the input shape, a conv layer or a dense width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncoderToken {
    /// `CxHxW`, first.
    Shape(ImageShape),
    /// `convOkKsS`.
    Conv(ConvSpec),
    /// A dense layer's width (or, first and without a shape, the input width).
    Dense(usize),
}

impl EncoderToken {
    /// Parses one comma-separated token.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.starts_with("conv") {
            return Ok(EncoderToken::Conv(t.parse()?));
        }
        if t.contains(['x', 'X']) {
            return Ok(EncoderToken::Shape(t.parse()?));
        }
        t.parse::<usize>().map(EncoderToken::Dense).map_err(|_| {
            Error::Config(format!(
                "encoder token '{s}' is neither a layer size (e.g. 32), an input shape \
                 (e.g. 1x28x28) nor a conv layer (e.g. conv32k3s2)"
            ))
        })
    }
}

impl FromStr for EncoderToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        EncoderToken::parse(s)
    }
}

impl fmt::Display for EncoderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncoderToken::Shape(s) => s.fmt(f),
            EncoderToken::Conv(c) => c.fmt(f),
            EncoderToken::Dense(n) => n.fmt(f),
        }
    }
}

/// Dense widths are written as numbers (so `encoder = [784, 256, 32]` in a config file stays
/// as it was), the other tokens as strings.
impl Serialize for EncoderToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EncoderToken::Dense(n) => s.serialize_u64(*n as u64),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for EncoderToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => usize::try_from(n)
                .map(EncoderToken::Dense)
                .map_err(|_| serde::de::Error::custom(format!("layer size {n} is too large"))),
            Raw::Text(t) => EncoderToken::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// An encoder string split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderLayers {
    /// The input shape, when the string starts with one.
    pub input_shape: Option<ImageShape>,
    /// The conv layers, in order.
    pub conv: Vec<ConvSpec>,
    /// The dense widths after them. Without conv layers the first is the input width (C·H·W
    /// when a shape was given); with conv layers they are the dense layers after the
    /// `Flatten`, and the flattened width is not among them.
    pub dense: Vec<usize>,
}

/// Splits an encoder string's tokens: a shape only first, conv layers only after a shape and
/// before any dense layer. Each error names the token.
pub fn split_tokens(tokens: &[EncoderToken]) -> Result<EncoderLayers> {
    let mut out = EncoderLayers {
        input_shape: None,
        conv: Vec::new(),
        dense: Vec::new(),
    };
    for (i, t) in tokens.iter().enumerate() {
        let n = i + 1;
        match *t {
            EncoderToken::Shape(s) if i == 0 => out.input_shape = Some(s),
            EncoderToken::Shape(s) => {
                return Err(Error::Config(format!(
                    "encoder token {n} ('{s}'): an input shape CxHxW can only be the first token"
                )));
            }
            EncoderToken::Conv(c) => {
                if out.input_shape.is_none() {
                    return Err(Error::Config(format!(
                        "encoder token {n} ('{c}'): conv layers need the input shape first \
                         (e.g. encoder = 1x28x28,{c},32)"
                    )));
                }
                if let Some(d) = out.dense.last() {
                    return Err(Error::Config(format!(
                        "encoder token {n} ('{c}'): conv layers must come before the dense \
                         layers (it follows '{d}')"
                    )));
                }
                out.conv.push(c);
            }
            EncoderToken::Dense(n) => out.dense.push(n),
        }
    }
    if let (Some(s), true) = (out.input_shape, out.conv.is_empty()) {
        out.dense.insert(0, s.len());
    }
    Ok(out)
}

/// The geometry of one conv stage, without the batch: the encoder's Conv2d maps
/// `in_c × in_h × in_w` to `out_c × out_h × out_w`, and the decoder's ConvTranspose2d maps it
/// back, with `output_padding` restoring the exact input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvStage {
    /// Input channels.
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// The mirrored ConvTranspose2d's `output_padding` (height, width).
    pub output_padding: (usize, usize),
}

impl ConvStage {
    /// `in_c·in_h·in_w`: one row of the stage's input.
    pub fn in_len(&self) -> usize {
        self.in_c
            .saturating_mul(self.in_h)
            .saturating_mul(self.in_w)
    }

    /// `out_c·out_h·out_w`: one row of its output.
    pub fn out_len(&self) -> usize {
        self.out_c
            .saturating_mul(self.out_h)
            .saturating_mul(self.out_w)
    }

    /// `out_c·in_c·kernel²`.
    pub fn weight_len(&self) -> usize {
        self.out_c
            .saturating_mul(self.in_c)
            .saturating_mul(self.kernel)
            .saturating_mul(self.kernel)
    }

    /// `in_c·kernel²`: the Conv2d's fan-in.
    pub fn fan_in(&self) -> usize {
        self.in_c
            .saturating_mul(self.kernel)
            .saturating_mul(self.kernel)
    }

    /// Multiply-accumulates of one example's forward pass.
    pub fn macs(&self) -> usize {
        self.out_len().saturating_mul(self.fan_in())
    }

    /// The output shape.
    pub fn output(&self) -> ImageShape {
        ImageShape {
            channels: self.out_c,
            height: self.out_h,
            width: self.out_w,
        }
    }
}

/// The output size of a convolution along one dimension, `(n + 2·pad − k) / s + 1`, or
/// `None` when the map would shrink below one pixel.
pub fn conv_out(n: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n.checked_add(2 * pad)?;
    (padded >= kernel && n > 0 && stride > 0).then(|| (padded - kernel) / stride + 1)
}

/// The ConvTranspose2d `output_padding` that maps `out` back to `n` along one dimension:
/// `n − ((out − 1)·s − 2·pad + k)`, which PyTorch allows in [0, s). `None` when none fits.
pub fn mirror_padding(
    n: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Option<usize> {
    let back = (out.checked_sub(1)?)
        .checked_mul(stride)?
        .checked_add(kernel)?
        .checked_sub(2 * pad)?;
    let p = n.checked_sub(back)?;
    (p < stride).then_some(p)
}

/// The stages of `convs` applied to `input`, each checked: the map must stay at least 1×1
/// and the mirror must exist. Errors name the layer.
pub fn stages(input: ImageShape, convs: &[ConvSpec]) -> Result<Vec<ConvStage>> {
    let mut shape = input;
    let mut out = Vec::new();
    for (i, c) in convs.iter().enumerate() {
        let name = format!("conv layer {} ('{c}')", i + 1);
        if c.channels == 0 || c.kernel == 0 || c.stride == 0 {
            return Err(Error::Config(format!(
                "{name}: channels, kernel and stride must be at least 1"
            )));
        }
        let pad = c.pad();
        let (Some(out_h), Some(out_w)) = (
            conv_out(shape.height, c.kernel, c.stride, pad),
            conv_out(shape.width, c.kernel, c.stride, pad),
        ) else {
            return Err(Error::Config(format!(
                "{name} shrinks the {shape} feature map below 1×1; use a smaller kernel or \
                 stride, or fewer conv layers"
            )));
        };
        let mirror = |n, o| mirror_padding(n, o, c.kernel, c.stride, pad);
        let (Some(ph), Some(pw)) = (mirror(shape.height, out_h), mirror(shape.width, out_w)) else {
            return Err(Error::Config(format!(
                "{name} cannot be mirrored: no ConvTranspose2d output_padding in [0, {}) maps \
                 {out_h}×{out_w} back to {}×{}",
                c.stride, shape.height, shape.width
            )));
        };
        let stage = ConvStage {
            in_c: shape.channels,
            in_h: shape.height,
            in_w: shape.width,
            out_c: c.channels,
            out_h,
            out_w,
            kernel: c.kernel,
            stride: c.stride,
            pad,
            output_padding: (ph, pw),
        };
        shape = stage.output();
        out.push(stage);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Result<Vec<EncoderToken>> {
        s.split(',').map(EncoderToken::parse).collect()
    }

    #[test]
    fn tokens_parse_with_their_defaults() {
        let t = tokens("1x28x28,conv32k3s2,conv64s2,conv8,conv4k5,32").unwrap();
        let conv = |channels, kernel, stride| {
            EncoderToken::Conv(ConvSpec {
                channels,
                kernel,
                stride,
            })
        };
        assert_eq!(
            t,
            [
                EncoderToken::Shape(ImageShape {
                    channels: 1,
                    height: 28,
                    width: 28
                }),
                conv(32, 3, 2),
                conv(64, 3, 2),
                conv(8, 3, 1),
                conv(4, 5, 1),
                EncoderToken::Dense(32)
            ]
        );
        let split = split_tokens(&t).unwrap();
        assert_eq!(split.conv.len(), 4);
        assert_eq!(split.dense, [32]);
        // Without convs the shape is the input width.
        let split = split_tokens(&tokens("3x4x5,16").unwrap()).unwrap();
        assert_eq!(split.dense, [60, 16]);
    }

    #[test]
    fn malformed_tokens_name_themselves() {
        for (s, says) in [
            ("conv0", "channel count must be at least 1"),
            ("conv16k0", "kernel size must be at least 1"),
            ("conv16s0", "stride must be at least 1"),
            ("3x0x28", "height must be at least 1"),
            ("conv", "convOkKsS"),
            ("conv16k", "'k' must be followed"),
            ("conv16s2k3", "convOkKsS"),
            ("conv16q", "convOkKsS"),
            ("1x28", "CxHxW"),
            ("abc", "neither a layer size"),
        ] {
            let e = EncoderToken::parse(s).unwrap_err().to_string();
            assert!(e.contains(&format!("'{s}'")), "{s}: {e}");
            assert!(e.contains(says), "{s}: {e}");
        }
        let e = split_tokens(&tokens("1x8x8,16,conv4").unwrap()).unwrap_err();
        assert!(e.to_string().contains("token 3 ('conv4k3s1')"), "{e}");
        assert!(e.to_string().contains("before the dense"), "{e}");
        let e = split_tokens(&tokens("64,conv4").unwrap()).unwrap_err();
        assert!(e.to_string().contains("input shape first"), "{e}");
        let e = split_tokens(&tokens("64,1x8x8").unwrap()).unwrap_err();
        assert!(e.to_string().contains("first token"), "{e}");
    }

    #[test]
    fn stages_mirror_exactly() {
        let s = stages(
            "1x28x28".parse().unwrap(),
            &["conv32k3s2".parse().unwrap(), "conv64k3s2".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(
            (s[0].out_h, s[0].out_w, s[0].output_padding),
            (14, 14, (1, 1))
        );
        assert_eq!(
            (s[1].out_h, s[1].out_w, s[1].output_padding),
            (7, 7, (1, 1))
        );
        assert_eq!(s[1].out_len(), 3136);
        let macs: usize = s.iter().map(ConvStage::macs).sum();
        assert_eq!(macs, 14 * 14 * 32 * 9 + 7 * 7 * 64 * 32 * 9);
        // Every kernel and stride on odd and small maps: the mirror always exists and
        // PyTorch's ConvTranspose2d size formula gives the input back.
        for n in 1..12 {
            for k in 1..7 {
                for st in 1..5 {
                    let c = ConvSpec {
                        channels: 2,
                        kernel: k,
                        stride: st,
                    };
                    let shape = ImageShape {
                        channels: 1,
                        height: n,
                        width: n + 1,
                    };
                    let s = stages(shape, &[c]).unwrap()[0];
                    let back = |o: usize, p: usize| (o - 1) * st + k + p - 2 * c.pad();
                    assert_eq!(back(s.out_h, s.output_padding.0), n);
                    assert_eq!(back(s.out_w, s.output_padding.1), n + 1);
                }
            }
        }
    }

    #[test]
    fn conv_specs_round_trip_and_dense_json_is_unchanged() {
        use crate::model::ModelSpec;
        let dense = ModelSpec::mirrored(&[784, 256, 32]);
        let json = dense.to_json();
        assert!(
            !json.contains("conv") && !json.contains("input_shape"),
            "{json}"
        );
        assert_eq!(ModelSpec::from_encoder_str("784,256,32").unwrap(), dense);
        let conv = ModelSpec::from_encoder_str("3x9x8,conv4k5s2,conv6,10").unwrap();
        assert_eq!(ModelSpec::from_json(&conv.to_json()).unwrap(), conv);
        assert_eq!(conv.encoder, [6 * 5 * 4, 10]);
        assert_eq!(conv.input_dim(), 3 * 9 * 8);
        let tokens: Vec<String> = conv
            .encoder_tokens()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(tokens, ["3x9x8", "conv4k5s2", "conv6k3s1", "10"]);
        assert_eq!(
            ModelSpec::from_encoder_tokens(&conv.encoder_tokens()).unwrap(),
            conv
        );
        // A dense spec written with a shape keeps it, and its width is C·H·W.
        let shaped = ModelSpec::from_encoder_str("1x4x4,8").unwrap();
        assert_eq!(
            (shaped.encoder.clone(), shaped.input_dim()),
            (vec![16, 8], 16)
        );
        assert_eq!(ModelSpec::from_json(&shaped.to_json()).unwrap(), shaped);
        // A fully convolutional model: the code is the last map, and names count Flatten.
        let full = ModelSpec::from_encoder_str("1x5x5,conv2s2").unwrap();
        full.validate().unwrap();
        let names: Vec<String> = full.layers().iter().map(|l| l.name.clone()).collect();
        assert_eq!(names, ["encoder.0", "decoder.1"]);
        assert_eq!(full.code_dim(), 2 * 3 * 3);
    }

    #[test]
    fn random_encoder_strings_never_panic() {
        use crate::model::{ModelSpec, ParamLayout, Variant};
        use crate::rng::{Sequence, Stream};
        let parts = [
            "1x8x8",
            "3x5x7",
            "0x2x2",
            "1x99999999999x3",
            "2x1x1",
            "conv",
            "conv4",
            "conv0",
            "conv3k5s2",
            "conv2k2",
            "conv2s3",
            "conv1k1s1",
            "conv99999999999k3",
            "conv4k",
            "conv4s",
            "k3",
            "16",
            "0",
            "7",
            "1",
            "x",
            "",
            "conv4k3s2s2",
            "18446744073709551615",
        ];
        let mut rng = Sequence::new(3, Stream::Init, 4242);
        for _ in 0..4000 {
            let n = 1 + rng.below(5) as usize;
            let text: Vec<&str> = (0..n)
                .map(|_| parts[rng.below(parts.len() as u32) as usize])
                .collect();
            let text = text.join(",");
            let Ok(mut spec) = ModelSpec::from_encoder_str(&text) else {
                continue;
            };
            for variant in [
                Variant::Plain,
                Variant::Vae {
                    beta: 1.0,
                    samples: 1,
                },
                Variant::Contractive {
                    lambda: 0.1,
                    projections: Some(2),
                },
            ] {
                spec.variant = variant;
                for tied in [false, true] {
                    spec.tied = tied;
                    if spec.validate().is_ok() {
                        let layout = ParamLayout::new(&spec);
                        assert!(layout.count() > 0, "{text}");
                        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
                    }
                }
            }
        }
    }

    #[test]
    fn an_impossible_mirror_or_a_vanished_map_is_refused() {
        // 7 → (7 + 0 − 1)/1 + 1 = 7 with k=1: fine; but a ConvTranspose2d from 2 with s=2, k=1
        // reaches at most (2−1)·2 + 1 + 1 = 4, so 6 cannot be the input.
        assert_eq!(mirror_padding(6, 2, 1, 2, 0), None);
        assert_eq!(mirror_padding(4, 2, 1, 2, 0), Some(1));
        assert_eq!(conv_out(0, 3, 1, 1), None);
        assert_eq!(conv_out(1, 5, 1, 0), None);
        assert_eq!(conv_out(1, 5, 1, 2), Some(1));
    }
}
