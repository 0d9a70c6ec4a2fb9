"""Pure, CPU-only analysis of recorded calls: pricing, and later waste detection."""
