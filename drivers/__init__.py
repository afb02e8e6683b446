"""Everything that touches a wire or a file format: decoders, recordings, imports, sinks."""
