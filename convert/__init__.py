"""convert: Hugging Face LFM2(.5)-VL checkpoint -> GGUF (text model + mmproj), numpy only, no torch."""
