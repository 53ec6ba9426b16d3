"""Examples built on the three libraries; never imported by them and not shipped in the wheel."""
