"""The GPU runner: one quant group per call, on the real diffusers FluxFillPipeline."""
