"""Dataset layout, caption-to-latent mapping, caching (VAE latents + UMT5 text) and bucketed loading."""
