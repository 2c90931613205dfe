"""The residual coder: everything that codes the spectrum under the envelope.

One module per tool, talking through plain arrays:

- :mod:`codec.residual.mdct` -- the low-overlap MDCT and its streaming synthesis;
- :mod:`codec.residual.rangecoder` -- the range coder and its Laplacian models;
- :mod:`codec.residual.tcx` -- the TCX coder (shaping, quantization, rate loop,
  noise filling, frame payload);
- :mod:`codec.residual.pitch` -- the encoder-controlled pitch pre-/post-filter;
- :mod:`codec.residual.harmonic` -- the harmonic model of the entropy coder;
- :mod:`codec.residual.rdoq` -- rate-distortion optimised quantization (encoder);
- :mod:`codec.residual.sidemodel` -- the trained tables of the side fields (since format 4).
"""
