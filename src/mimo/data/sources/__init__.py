"""Bundled offline sources: the MNI152 T1 template (nilearn) and seeded procedural phantoms."""
