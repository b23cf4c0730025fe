// The 64×64 tile of matmul.wgsl: 16×16 threads, k-steps of 16.
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const THREADS: u32 = 256u;
