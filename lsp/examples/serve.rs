//! The language server alone, without the rest of `nym` around it: what
//! `scripts/bench_lsp.py --server` runs to profile the server quickly
//! (`cargo build --release -p nym-lsp --example serve`).
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(nym_lsp::serve_stdio());
    // As `nym lsp` does: stdin's reader may still be blocked after `exit`.
    rt.shutdown_background();
}
