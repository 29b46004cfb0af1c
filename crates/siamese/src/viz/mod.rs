//! Pictures: loss curves, 2-D embedding scatter plots, distance histograms, montages (plotters
//! with a bundled DejaVu Sans font), and the 2-D projections behind them (PCA, Barnes–Hut t-SNE).

pub mod canvas;
pub mod montage;
pub mod pca;
pub mod plot;
mod quadtree;
pub mod tsne;

pub use montage::{image_grid_png, montage_images_png, montage_png};
pub use pca::pca_2d;
pub use plot::{histogram_png, loss_curves_png, scatter_png};
pub use tsne::tsne;
