//! The Fashion-MNIST test set compiled into the library, so training works offline with no
//! data flags: 10,000 grey 28×28 images of clothing in ten classes, as the gzipped IDX files
//! committed under `data/fashion-mnist/` (© 2017 Zalando SE, MIT licence).

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::Dataset;
use super::idx::{parse_idx, parse_idx_labels};
use crate::error::{Error, Result};

const IMAGES_GZ: &[u8] = include_bytes!("../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
const LABELS_GZ: &[u8] = include_bytes!("../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// The licence of the bundled images, in full.
pub const LICENSE: &str = include_str!("../../data/fashion-mnist/LICENSE");

/// One line to show whenever the bundled images are used.
pub const LICENSE_NOTICE: &str = "using the bundled Fashion-MNIST test set (10,000 images, \
     © 2017 Zalando SE, MIT licence: data/fashion-mnist/LICENSE)";

/// The classes the labels number, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

fn gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::bad_file(name, format!("broken gzip data: {e}")))?;
    Ok(out)
}

/// The 10,000 test images as a 10000×784 data set, pixels scaled to [0, 1].
pub fn fashion_mnist_test() -> Result<Dataset> {
    let name = "<bundled>/t10k-images-idx3-ubyte.gz";
    parse_idx(&gunzip(IMAGES_GZ, name)?, Path::new(name))
}

/// The 10,000 test labels (0..10, see [`CLASS_NAMES`]), in image order.
pub fn fashion_mnist_test_labels() -> Result<Vec<u32>> {
    let name = "<bundled>/t10k-labels-idx1-ubyte.gz";
    parse_idx_labels(&gunzip(LABELS_GZ, name)?, Path::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_test_set_is_ten_thousand_labelled_images() {
        let d = fashion_mnist_test().unwrap();
        assert_eq!((d.rows, d.cols), (10_000, 784));
        assert!(d.values.iter().all(|v| (0.0..=1.0).contains(v)));
        let labels = fashion_mnist_test_labels().unwrap();
        assert_eq!(labels.len(), 10_000);
        // The test set is balanced: 1,000 images of each class.
        for class in 0..10 {
            assert_eq!(labels.iter().filter(|&&l| l == class).count(), 1000);
        }
        assert!(LICENSE.contains("MIT"));
    }
}
