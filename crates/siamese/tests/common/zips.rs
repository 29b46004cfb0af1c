//! Hand-made Omniglot-style zips for the tests: a grey drawing as PNG bytes, and a stored
//! (uncompressed) zip of named entries.

use std::io::Write;
use std::path::Path;

/// `img` encoded as PNG.
pub fn png(img: image::GrayImage) -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// Writes a zip holding `entries` (name, bytes) uncompressed.
pub fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}
