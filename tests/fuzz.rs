//! A mutation fuzzer for every loader: valid seed files are flipped, truncated, spliced,
//! extended and have their header numbers rewritten; every mutant must load or be refused with
//! an error — no panic, no hang, no allocation the input cannot back.
//!
//! CI runs a smoke pass (`HOURGLASS_FUZZ_ITERS`, default 3,000 per loader). The full campaign:
//! `HOURGLASS_FUZZ_ITERS=1000000 cargo test --release --test fuzz -- --nocapture`.
//! A crashing input is written to `fuzz/crashes/` before the test fails.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hourglass::data::{csv, idx, npy};
use hourglass::io::checkpoint;
use hourglass::model::{ModelSpec, Parameters, Variant};
use hourglass::rng::{Sequence, Stream};

fn iterations() -> u64 {
    std::env::var("HOURGLASS_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// One random edit of `input`.
fn mutate(input: &[u8], rng: &mut Sequence, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let len = v.len().max(1) as u32;
        match rng.below(9) {
            0 => {
                // bit flip
                if !v.is_empty() {
                    let i = rng.below(len) as usize % v.len();
                    v[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // random byte
                if !v.is_empty() {
                    let i = rng.below(len) as usize % v.len();
                    v[i] = rng.next_u32() as u8;
                }
            }
            2 => v.truncate(rng.below(len) as usize),
            3 => {
                // insert a run of bytes
                let at = rng.below(len) as usize % (v.len() + 1);
                let n = rng.below(16) as usize;
                let run: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
                v.splice(at..at, run);
            }
            4 => {
                // delete a range
                if !v.is_empty() {
                    let a = rng.below(len) as usize % v.len();
                    let b = (a + rng.below(64) as usize).min(v.len());
                    v.drain(a..b);
                }
            }
            5 => {
                // interesting 32-bit numbers at a random (often header) offset
                let at = rng.below(len.min(64)) as usize;
                let n: u32 = [0, 1, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000]
                    [rng.below(7) as usize];
                for (k, b) in n.to_be_bytes().iter().enumerate() {
                    if at + k < v.len() {
                        v[at + k] = *b;
                    }
                }
            }
            6 => {
                // ASCII digits into text headers (shapes, lengths)
                if !v.is_empty() {
                    let at = rng.below(len) as usize % v.len();
                    let digits = format!("{}", rng.next_u32() as u64 * rng.next_u32() as u64);
                    v.splice(at..at, digits.bytes());
                }
            }
            7 => {
                // splice with another corpus member
                let other = &corpus[rng.below(corpus.len() as u32) as usize];
                let cut = rng.below(len) as usize % (v.len() + 1);
                let from = rng.below(other.len().max(1) as u32) as usize % (other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                // duplicate a block (lying lengths that happen to fit)
                if !v.is_empty() {
                    let a = rng.below(len) as usize % v.len();
                    let b = (a + rng.below(256) as usize).min(v.len());
                    let block = v[a..b].to_vec();
                    v.extend_from_slice(&block);
                }
            }
        }
    }
    v
}

fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("crashes")
}

/// Feeds `iterations()` mutants of `corpus` to `load`; fails on a panic or an input that takes
/// longer than two seconds. The committed corpus in `fuzz/corpus/NAME/` (the seeds below, and
/// any input that once crashed a loader) is loaded unmutated first and joins the seeds.
fn fuzz(name: &str, mut corpus: Vec<Vec<u8>>, load: impl Fn(&[u8]) -> bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(name);
    if std::env::var("HOURGLASS_FUZZ_WRITE_CORPUS").is_ok() {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, c) in corpus.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}.bin")), c).expect("write seed");
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let input = std::fs::read(&f).expect("read corpus file");
        let outcome = catch_unwind(AssertUnwindSafe(|| load(&input)));
        assert!(
            outcome.is_ok(),
            "{name}: corpus input {} panics",
            f.display()
        );
        corpus.push(input);
    }
    let iters = iterations();
    let mut rng = Sequence::new(0xF022, Stream::Init, name.len() as u32);
    let (mut accepted, mut slowest) = (0u64, Duration::ZERO);
    let started = Instant::now();
    for i in 0..iters {
        let seed = &corpus[(i % corpus.len() as u64) as usize];
        let input = mutate(seed, &mut rng, &corpus);
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| load(&input)));
        let took = t.elapsed();
        slowest = slowest.max(took);
        let failure = match outcome {
            Ok(ok) => {
                accepted += u64::from(ok);
                (took > Duration::from_secs(2)).then(|| format!("took {took:?}"))
            }
            Err(_) => Some("panicked".to_string()),
        };
        if let Some(why) = failure {
            std::fs::create_dir_all(crash_dir()).expect("crash dir");
            let path = crash_dir().join(format!("{name}-{i}.bin"));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(&input))
                .expect("write crash");
            panic!("{name}: input {i} {why}; saved to {}", path.display());
        }
    }
    eprintln!(
        "{name}: {iters} inputs in {:.1} s, {accepted} loaded, the rest refused with errors; slowest {slowest:?}",
        started.elapsed().as_secs_f64()
    );
}

fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn npy_loader_survives_mutants() {
    let f32s: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = (0..6).flat_map(|i| (i as f64).to_le_bytes()).collect();
    let corpus = vec![
        npy_bytes(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            &f32s,
        ),
        npy_bytes(
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &f64s,
        ),
        npy_bytes(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3), }",
            &[7; 12],
        ),
        npy_bytes(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (12,), }",
            &f32s,
        ),
    ];
    fuzz("npy", corpus, |b| {
        npy::parse_npy(b, Path::new("fuzz.npy")).is_ok()
    });
}

fn idx_bytes(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn idx_corpus() -> Vec<Vec<u8>> {
    vec![
        idx_bytes(0x08, &[3, 2, 2], &[1; 12]),
        idx_bytes(0x0D, &[2, 3], &[0x3f, 0x80, 0, 0].repeat(6)),
        idx_bytes(0x08, &[5], &[0, 1, 2, 3, 4]),
        idx_bytes(0x0B, &[2, 2], &[0, 1, 0, 2, 0, 3, 0, 4]),
    ]
}

#[test]
fn idx_loader_survives_mutants() {
    fuzz("idx", idx_corpus(), |b| {
        let labels = idx::parse_idx_labels(b, Path::new("fuzz.idx")).is_ok();
        idx::parse_idx(b, Path::new("fuzz.idx")).is_ok() || labels
    });
}

#[test]
fn gzipped_idx_loader_survives_mutants() {
    let corpus: Vec<Vec<u8>> = idx_corpus()
        .iter()
        .map(|raw| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).expect("gzip");
            e.finish().expect("gzip")
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("hourglass-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("mutant-idx3-ubyte.gz");
    fuzz("idx.gz", corpus, |b| {
        std::fs::write(&path, b).expect("write mutant");
        idx::read_idx(&path).is_ok()
    });
}

#[test]
fn csv_loader_survives_mutants() {
    let corpus = vec![
        b"a,b,c\n1,2,3\n4,5,6\n".to_vec(),
        b"0.5, -1e3 ,7\r\n\r\n8,9,10\n".to_vec(),
        b"1\n2\n3".to_vec(),
        b"x,y\nnan,inf\n-inf,1.5\n".to_vec(),
    ];
    fuzz("csv", corpus, |b| {
        let text = String::from_utf8_lossy(b);
        csv::parse_csv(&text, Path::new("fuzz.csv")).is_ok()
    });
}

#[test]
fn checkpoint_loader_survives_mutants() {
    let mut corpus = Vec::new();
    for (enc, variant, tied) in [
        (&[6usize, 3][..], Variant::Plain, false),
        (
            &[5, 4, 2],
            Variant::Vae {
                beta: 1.0,
                samples: 1,
            },
            false,
        ),
        (&[4, 2], Variant::Plain, true),
    ] {
        let mut spec = ModelSpec::mirrored(enc);
        spec.variant = variant;
        spec.tied = tied;
        corpus.push(checkpoint::to_bytes(&spec, &Parameters::init(&spec, 1)).expect("serialize"));
    }
    fuzz("safetensors", corpus, |b| checkpoint::from_bytes(b).is_ok());
}
