// Placeholder: implemented by the numerics layer.
