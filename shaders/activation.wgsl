// Activation functions, prepended to every kernel that applies one.
//
// ACT selects the function (codes as `Activation::code` in src/model/spec.rs):
//   0 identity, 1 ReLU, 2 leaky ReLU (slope 0.01), 3 sigmoid, 4 tanh.
// Derivatives are taken from the output y = act(x), so backward passes need only what the
// forward pass stored. tanh is written through exp(-2|x|) because tanh builtins of some drivers
// return NaN for large |x|; the CPU twin (src/cpu/kernels.rs) uses the same form.

override ACT: u32 = 0u;
const LEAKY_RELU_SLOPE: f32 = 0.01;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn safe_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, x < 0.0);
}

fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return max(x, 0.0); }
        case 2u: { return select(LEAKY_RELU_SLOPE * x, x, x > 0.0); }
        case 3u: { return sigmoid(x); }
        case 4u: { return safe_tanh(x); }
        default: { return x; }
    }
}

fn activation_grad_from_output(y: f32) -> f32 {
    switch ACT {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return select(LEAKY_RELU_SLOPE, 1.0, y > 0.0); }
        case 3u: { return y * (1.0 - y); }
        case 4u: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}
