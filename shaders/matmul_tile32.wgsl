// The 32×32 tile of matmul.wgsl, for small products: one too small to give a large GPU many
// 64×64 tiles (mnist_ae's 256×512 layer makes 32) gets four times as many workgroups, each
// thread still owning a 4×4 block of C; the executor picks it per device by timing
// (src/gpu/autotune.rs). 8×8 threads, k-steps of 16, eight staged elements per thread.
const BM: u32 = 32u;
const BN: u32 = 32u;
const BK: u32 = 16u;
const THREADS: u32 = 64u;
