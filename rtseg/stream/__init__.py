"""Sources, pipeline, publisher and node: frames in, masks out."""
