//! The CPU executor's matrix product: `c = op(a) · op(b)` cut into one tile per thread, each
//! tile one single-threaded GEMM call followed by the op's epilogue on that tile while it is
//! still in cache.
//!
//! Why tiles on rayon's threads rather than a threaded GEMM: the executor's other kernels run on
//! rayon, and a BLAS with its own thread pool spins beside it on the same cores; one pool keeps
//! the machine's cores for one thing at a time, and the epilogue (bias + activation, activation
//! gradient) then costs one pass over a tile in cache instead of a pass over the whole product
//! (it was 7% of an mnist_ae step as a separate pass).
//!
//! The per-tile GEMM is OpenBLAS's `cblas_sgemm` for f32 where `build.rs` could link OpenBLAS
//! (or the `openblas` feature forced it), and the pure-Rust `gemm` crate otherwise (or with the
//! `rust-gemm` feature), and always for f64 (the finite-difference path). At run time f32 also
//! takes the `gemm` crate when OpenBLAS picked kernels below the CPU ([`openblas_fits_cpu`]):
//! OpenBLAS chooses its kernels from the CPU's family and model, which many virtual machines
//! mask ("Intel(R) Xeon(R) Processor"), and then runs SSE3 kernels ("Prescott") on an AVX-512
//! CPU, 40 GFLOP/s where the `gemm` crate, which reads the CPU's feature flags, ran 300 on the
//! same 2 cores (BENCHMARKS.md). OpenBLAS is there for the forward products, `x · wᵀ`: the `gemm` crate packs a
//! row-major weight matrix whose row length is a power of two at 100–130 GFLOP/s on this
//! project's 2-core machine against OpenBLAS's 180–190 (BENCHMARKS.md has the table).

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

/// Whether the application allowed [`set_openblas_serial`]; off until it does.
static OPENBLAS_SERIAL: AtomicBool = AtomicBool::new(false);

/// Lets the CPU executor call `openblas_set_num_threads(1)` (with the `openblas` feature): a
/// **process-wide** setting of the system's OpenBLAS, which every other user of that library in
/// the process (numpy linked against the same copy, the application's own BLAS calls) then
/// shares. With it, each product is cut into one tile per rayon thread, each tile one
/// single-threaded OpenBLAS call with its epilogue fused (the fastest way, see the module
/// comment). Without it (the default), OpenBLAS keeps its own thread count and each f32 product
/// is one OpenBLAS call that threads itself, so the two pools never run on the same cores at
/// once; the f64 path and builds without `openblas` are not affected. The `hourglass` command
/// line allows it. Once OpenBLAS is set to one thread it stays so for the process.
pub fn set_openblas_serial(allow: bool) {
    OPENBLAS_SERIAL.store(allow, Ordering::Relaxed);
}

/// A row-major matrix as stored, and whether the product reads its transpose.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a, T> {
    /// `rows × cols` elements, row-major.
    pub data: &'a [T],
    /// Stored rows.
    pub rows: usize,
    /// Stored columns (the row stride).
    pub cols: usize,
    /// The product reads the transpose.
    pub trans: bool,
}

impl<T> Stored<'_, T> {
    /// Rows and columns of the operand the product reads.
    pub fn op_shape(&self) -> (usize, usize) {
        if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// Element `(i, j)` of the operand the product reads; in bounds for `i`, `j` within
    /// [`Stored::op_shape`] (or one past, for an empty range).
    fn at(&self, i: usize, j: usize) -> *const T {
        let (r, c) = if self.trans { (j, i) } else { (i, j) };
        self.data.as_ptr().wrapping_add(r * self.cols + c)
    }
}

/// One single-threaded GEMM on a tile; the `gemm` crate's unless a type says otherwise.
pub trait TileProduct: Copy + Send + Sync + num_traits::One + 'static {
    /// `c[m×n] = op(a)[m×k] · op(b)[k×n]`, or `+=` with `accumulate`; `a` and `b` point at
    /// the tile's first element of op(a) and op(b) inside matrices of row stride `a_ld`, `b_ld`
    /// (stored, before the transpose), `c` at the tile's first element with row stride `c_ld`.
    ///
    /// # Safety
    /// Every element the tile reads or writes lies inside live allocations, `c`'s tile is
    /// written by nobody else meanwhile, and it does not overlap `a` or `b`.
    unsafe fn tile_product(
        shape: (usize, usize, usize),
        a: (*const Self, usize, bool),
        b: (*const Self, usize, bool),
        c: (*mut Self, usize),
        accumulate: bool,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { gemm_crate(shape, a, b, c, accumulate) }
    }

    /// Whether products of this type are cut into tiles on rayon's threads (else one tile,
    /// which the GEMM threads itself).
    fn tiles_on_rayon() -> bool {
        true
    }
}

/// The `gemm` crate's product on one thread.
///
/// # Safety
/// As [`TileProduct::tile_product`].
unsafe fn gemm_crate<T: TileProduct>(
    (m, n, k): (usize, usize, usize),
    (a, a_ld, trans_a): (*const T, usize, bool),
    (b, b_ld, trans_b): (*const T, usize, bool),
    (c, c_ld): (*mut T, usize),
    accumulate: bool,
) {
    // Row and column strides of op(x): a transpose swaps them.
    let strides = |ld: usize, t: bool| {
        if t {
            (1, ld as isize)
        } else {
            (ld as isize, 1)
        }
    };
    let (a_rs, a_cs) = strides(a_ld, trans_a);
    let (b_rs, b_cs) = strides(b_ld, trans_b);
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            c_ld as isize,
            accumulate,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

impl TileProduct for f64 {}

#[cfg(not(hourglass_openblas))]
impl TileProduct for f32 {}

/// OpenBLAS's x86 kernels with AVX2 and FMA (`openblas_get_corename()`, lower case); the
/// others (SSE3 "prescott", AVX "sandybridge", "unknown", ...) are older than any CPU that has
/// AVX2 and FMA.
const OPENBLAS_AVX2_CORES: [&str; 6] = [
    "haswell",
    "zen",
    "excavator",
    "skylakex",
    "cooperlake",
    "sapphirerapids",
];

/// Whether OpenBLAS's kernels `core` leave this CPU's vector units idle: the CPU has AVX2 and
/// FMA (`avx2_fma`) and the kernels are older than that.
fn openblas_underuses(core: &str, avx2_fma: bool) -> bool {
    avx2_fma && !OPENBLAS_AVX2_CORES.contains(&core.to_ascii_lowercase().as_str())
}

/// Whether this CPU has AVX2 and FMA.
fn cpu_has_avx2_fma() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

/// The kernels OpenBLAS chose on this machine (`openblas_get_corename()`, e.g. "SkylakeX",
/// "Prescott"), or `None` in a build without OpenBLAS.
pub fn openblas_core() -> Option<String> {
    #[cfg(hourglass_openblas)]
    {
        Some(openblas::core_name())
    }
    #[cfg(not(hourglass_openblas))]
    {
        None
    }
}

/// What takes the CPU executor's f32 products, for reports: "OpenBLAS", "gemm-crate", or
/// "gemm-crate (OpenBLAS chose Prescott kernels, below this CPU)".
pub fn f32_products() -> String {
    match openblas_core() {
        Some(_) if openblas_fits_cpu() => "OpenBLAS".to_string(),
        Some(core) => format!("gemm-crate (OpenBLAS chose {core} kernels, below this CPU)"),
        None => "gemm-crate".to_string(),
    }
}

/// Whether the CPU executor's f32 products go through OpenBLAS: in a build with OpenBLAS, unless
/// OpenBLAS's kernels are older than the CPU (see the module comment), when the `gemm` crate
/// takes them. Decided once per process.
pub fn openblas_fits_cpu() -> bool {
    static FITS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FITS.get_or_init(|| {
        openblas_core().is_some_and(|core| !openblas_underuses(&core, cpu_has_avx2_fma()))
    })
}

#[cfg(hourglass_openblas)]
mod openblas {
    use std::ffi::c_int;

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    // Two functions of the system's libopenblas (Debian: libopenblas-dev); a binding crate
    // would add a build script that downloads OpenBLAS sources to declare the same two lines.
    #[link(name = "openblas")]
    unsafe extern "C" {
        fn cblas_sgemm(
            layout: c_int,
            trans_a: c_int,
            trans_b: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
        fn openblas_set_num_threads(threads: c_int);
        fn openblas_get_corename() -> *const std::ffi::c_char;
    }

    /// `openblas_get_corename()`: the kernels OpenBLAS chose when it was loaded.
    pub(super) fn core_name() -> String {
        // SAFETY: returns a pointer to a static NUL-terminated string (or null).
        let p = unsafe { openblas_get_corename() };
        if p.is_null() {
            return "unknown".into();
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }

    /// `cblas_sgemm` on the calling thread; `None` (nothing done) for an empty inner dimension
    /// (BLAS would want leading dimensions of at least 1 for the empty operands) or a size
    /// beyond BLAS's `int`.
    ///
    /// # Safety
    /// As [`super::TileProduct::tile_product`].
    pub(super) unsafe fn sgemm(
        (m, n, k): (usize, usize, usize),
        (a, a_ld, trans_a): (*const f32, usize, bool),
        (b, b_ld, trans_b): (*const f32, usize, bool),
        (c, c_ld): (*mut f32, usize),
        accumulate: bool,
    ) -> Option<()> {
        static SERIAL: std::sync::Once = std::sync::Once::new();
        // Tiles already use every core (see the module comment); OpenBLAS's own threads would
        // only compete with them. Process-wide, so only when the application allowed it;
        // otherwise the product is one call that OpenBLAS threads itself.
        if super::OPENBLAS_SERIAL.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: sets a process-wide thread count; callable at any time.
            SERIAL.call_once(|| unsafe { openblas_set_num_threads(1) });
        }
        if k == 0 {
            return None;
        }
        let int = |x: usize| c_int::try_from(x).ok();
        let flag = |t: bool| if t { TRANS } else { NO_TRANS };
        let (m, n, k) = (int(m)?, int(n)?, int(k)?);
        let (a_ld, b_ld, c_ld) = (int(a_ld)?, int(b_ld)?, int(c_ld)?);
        let beta = if accumulate { 1.0 } else { 0.0 };
        // SAFETY: forwarded from the caller; the leading dimensions are the stored row strides,
        // at least 1 for non-empty operands.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                flag(trans_a),
                flag(trans_b),
                m,
                n,
                k,
                1.0,
                a,
                a_ld,
                b,
                b_ld,
                beta,
                c,
                c_ld,
            );
        }
        Some(())
    }
}

#[cfg(hourglass_openblas)]
impl TileProduct for f32 {
    unsafe fn tile_product(
        shape: (usize, usize, usize),
        a: (*const Self, usize, bool),
        b: (*const Self, usize, bool),
        c: (*mut Self, usize),
        accumulate: bool,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            if !openblas_fits_cpu() || openblas::sgemm(shape, a, b, c, accumulate).is_none() {
                gemm_crate(shape, a, b, c, accumulate)
            }
        }
    }

    /// Only once OpenBLAS may be made single-threaded ([`set_openblas_serial`]), or when the
    /// `gemm` crate takes the products ([`openblas_fits_cpu`]).
    fn tiles_on_rayon() -> bool {
        OPENBLAS_SERIAL.load(Ordering::Relaxed) || !openblas_fits_cpu()
    }
}

/// Smallest tile side worth a thread of its own.
const MIN_TILE: usize = 64;
/// Tile sides are multiples of this (the GEMM kernels' register blocks divide it).
const ALIGN: usize = 16;

/// Row and column blocks for `threads` threads: rows first (tiles of whole rows are contiguous),
/// columns where there are too few rows; one tile for a product too small to split.
fn grid(m: usize, n: usize, k: usize, threads: usize) -> (usize, usize) {
    if threads < 2 || m * n * k < 1 << 18 {
        return (1, 1);
    }
    let rows = threads.min(m.div_ceil(MIN_TILE)).max(1);
    let cols = (threads / rows).min(n.div_ceil(MIN_TILE)).max(1);
    (rows, cols)
}

/// Cuts `0..len` into `blocks` ranges of [`ALIGN`]-multiple length (the last takes the rest).
fn block(len: usize, blocks: usize, i: usize) -> std::ops::Range<usize> {
    let size = len.div_ceil(blocks).next_multiple_of(ALIGN);
    (i * size).min(len)..((i + 1) * size).min(len)
}

/// The output matrix, shared by the tiles that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Output<T>(*mut T);
// SAFETY: every tile writes only its own rows × columns of the buffer (see `product`).
unsafe impl<T: Send> Send for Output<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Output<T> {}

impl<T> Output<T> {
    /// The element at `offset` (a method, so closures capture the whole `Output`, which is
    /// `Sync`, not its raw-pointer field).
    fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// `c[m×n] = op(a) · op(b)` (`+=` with `accumulate`), then `finish(row, first_col, part)` on
/// every row part of every tile, on the thread that computed it.
///
/// # Panics
/// An error, and nothing computed, if the operands' lengths, shapes and `c` disagree.
pub fn product<T: TileProduct>(
    a: Stored<'_, T>,
    b: Stored<'_, T>,
    c: &mut [T],
    accumulate: bool,
    finish: impl Fn(usize, usize, &mut [T]) + Sync,
) -> crate::Result<()> {
    let (m, k) = a.op_shape();
    let (kb, n) = b.op_shape();
    let bad = |what: String| Err(crate::Error::Config(format!("matrix product: {what}")));
    if a.data.len() != a.rows * a.cols || b.data.len() != b.rows * b.cols {
        return bad(format!(
            "operands of {} and {} values do not hold {}×{} and {}×{}",
            a.data.len(),
            b.data.len(),
            a.rows,
            a.cols,
            b.rows,
            b.cols
        ));
    }
    if k != kb || c.len() != m * n {
        return bad(format!(
            "{m}×{k} · {kb}×{n} into {} values (needs equal inner sizes and {m}×{n})",
            c.len()
        ));
    }
    if m * n == 0 {
        return Ok(());
    }
    let threads = if T::tiles_on_rayon() {
        rayon::current_num_threads()
    } else {
        1
    };
    let (row_blocks, col_blocks) = grid(m, n, k, threads);
    let out = Output(c.as_mut_ptr());
    let tile = |t: usize| {
        let (rows, cols) = (
            block(m, row_blocks, t / col_blocks),
            block(n, col_blocks, t % col_blocks),
        );
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        let c0 = rows.start * n + cols.start;
        // SAFETY: the tile's rows × columns lie inside `c` (m×n, checked) and no other tile's;
        // op(a)'s rows and op(b)'s columns it reads lie inside `a` and `b` (shapes checked);
        // `c` is a distinct &mut borrow, so it overlaps neither.
        unsafe {
            T::tile_product(
                (rows.len(), cols.len(), k),
                (a.at(rows.start, 0), a.cols, a.trans),
                (b.at(0, cols.start), b.cols, b.trans),
                (out.at(c0), n),
                accumulate,
            );
        }
        for r in rows {
            // SAFETY: row `r`'s columns of this tile, written by this thread alone.
            let part =
                unsafe { std::slice::from_raw_parts_mut(out.at(r * n + cols.start), cols.len()) };
            finish(r, cols.start, part);
        }
    };
    let tiles = row_blocks * col_blocks;
    if tiles == 1 {
        tile(0);
    } else {
        (0..tiles).into_par_iter().for_each(tile);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by the definition, in f64.
    fn naive(a: Stored<'_, f32>, b: Stored<'_, f32>) -> Vec<f64> {
        let ((m, k), (_, n)) = (a.op_shape(), b.op_shape());
        let get = |x: &Stored<'_, f32>, i: usize, j: usize| {
            let (r, c) = if x.trans { (j, i) } else { (i, j) };
            f64::from(x.data[r * x.cols + c])
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| get(&a, i, p) * get(&b, p, j)).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn openblas_is_left_alone_unless_allowed_and_both_ways_agree() {
        // The only test that changes the setting: it starts off.
        assert!(
            !OPENBLAS_SERIAL.load(Ordering::Relaxed),
            "off until the caller allows it"
        );
        let (m, n, k) = (257, 130, 70);
        let (a_data, b_data) = (values(m * k, 3), values(k * n, 4));
        let a = Stored {
            data: &a_data,
            rows: m,
            cols: k,
            trans: false,
        };
        let b = Stored {
            data: &b_data,
            rows: k,
            cols: n,
            trans: false,
        };
        let want = naive(a, b);
        for allow in [false, true] {
            set_openblas_serial(allow);
            assert_eq!(
                <f32 as TileProduct>::tiles_on_rayon(),
                allow || !openblas_fits_cpu(),
                "f32 products are tiled on rayon only when OpenBLAS may be serialized"
            );
            assert!(
                <f64 as TileProduct>::tiles_on_rayon(),
                "f64 never calls OpenBLAS"
            );
            let mut c = vec![0.0f32; m * n];
            product(a, b, &mut c, false, |_, _, _| {}).unwrap();
            for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "allow {allow} [{i}]: {got} vs {w}"
                );
            }
        }
        set_openblas_serial(false);
    }

    #[test]
    fn openblas_gives_way_to_the_gemm_crate_only_below_the_cpu() {
        // A masked CPU model: OpenBLAS runs SSE3 kernels on an AVX2/AVX-512 CPU.
        assert!(openblas_underuses("Prescott", true));
        assert!(openblas_underuses("Sandybridge", true));
        assert!(openblas_underuses("unknown", true));
        for core in ["Haswell", "SkylakeX", "Zen", "SapphireRapids", "COOPERLAKE"] {
            assert!(!openblas_underuses(core, true), "{core}");
        }
        // A CPU without AVX2 (or not x86): OpenBLAS's choice stands.
        assert!(!openblas_underuses("Prescott", false));
        assert!(!openblas_underuses("Nehalem", false));
        // This machine: the decision follows the rule, and without OpenBLAS there is none.
        match openblas_core() {
            Some(core) => assert_eq!(
                openblas_fits_cpu(),
                !openblas_underuses(&core, cpu_has_avx2_fma())
            ),
            None => assert!(!openblas_fits_cpu()),
        }
    }

    #[test]
    fn tiles_cover_the_product_in_every_layout() {
        // Shapes off the tile and alignment sizes, large enough to be split over threads.
        for &(m, n, k) in &[
            (257, 33, 70),
            (33, 257, 70),
            (1, 300, 1000),
            (130, 130, 20),
            (7, 1, 3),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_data = values(m * k, 1);
                let b_data = values(k * n, 2);
                let a = Stored {
                    data: &a_data,
                    rows: if ta { k } else { m },
                    cols: if ta { m } else { k },
                    trans: ta,
                };
                let b = Stored {
                    data: &b_data,
                    rows: if tb { n } else { k },
                    cols: if tb { k } else { n },
                    trans: tb,
                };
                let want = naive(a, b);
                let mut c = vec![0.5f32; m * n];
                let seen = std::sync::Mutex::new(vec![0u8; m * n]);
                product(a, b, &mut c, false, |r, c0, part| {
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for j in 0..part.len() {
                        s[r * n + c0 + j] += 1;
                    }
                })
                .unwrap();
                assert!(
                    seen.into_inner()
                        .unwrap_or_default()
                        .iter()
                        .all(|&x| x == 1),
                    "{m}x{n}x{k}: each element finished once"
                );
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(got) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{n}x{k} ta {ta} tb {tb} [{i}]: {got} vs {w}"
                    );
                }
                // Accumulating adds the same product again.
                product(a, b, &mut c, true, |_, _, _| {}).unwrap();
                for (&got, &w) in c.iter().zip(&want) {
                    assert!((f64::from(got) - 2.0 * w).abs() <= 2e-4 * (1.0 + w.abs()));
                }
            }
        }
    }

    #[test]
    fn empty_inner_dimension_stores_zeros_or_keeps_c() {
        let a = Stored {
            data: &[][..],
            rows: 3,
            cols: 0,
            trans: false,
        };
        let b = Stored {
            data: &[][..],
            rows: 0,
            cols: 2,
            trans: false,
        };
        let mut c = vec![7.0f32; 6];
        product(a, b, &mut c, true, |_, _, _| {}).unwrap();
        assert_eq!(c, vec![7.0; 6]);
        product(a, b, &mut c, false, |_, _, _| {}).unwrap();
        assert_eq!(c, vec![0.0; 6]);
    }

    #[test]
    fn mismatched_operands_are_an_error_not_a_panic() {
        let (a_data, b_data) = (values(6, 1), values(20, 2));
        let a = Stored {
            data: &a_data,
            rows: 2,
            cols: 3,
            trans: false,
        };
        let b = Stored {
            data: &b_data,
            rows: 4,
            cols: 5,
            trans: false,
        };
        let mut c = vec![0.0f32; 10];
        let e = product(a, b, &mut c, false, |_, _, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("2×3 · 4×5"), "{e}");
        let short = Stored {
            data: &a_data[..5],
            ..a
        };
        assert!(product(short, b, &mut c, false, |_, _, _| {}).is_err());
    }

    #[test]
    fn grid_splits_rows_first_and_small_products_not_at_all() {
        assert_eq!(grid(256, 512, 784, 2), (2, 1));
        assert_eq!(grid(32, 256, 256, 2), (1, 2));
        assert_eq!(grid(256, 32, 8, 2), (1, 1));
        assert_eq!(grid(256, 512, 784, 1), (1, 1));
        assert_eq!(grid(784, 512, 256, 16), (13, 1));
        assert_eq!(block(100, 2, 0), 0..64);
        assert_eq!(block(100, 2, 1), 64..100);
    }
}
